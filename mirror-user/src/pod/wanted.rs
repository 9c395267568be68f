//! The pods `mirror run` looks for, each under an id that its attachments refer to. `--pod` and
//! `--pod-ip` are there from start to end; pods that the Kubernetes API reports come and go, so
//! ids are never reused.
use std::{collections::BTreeMap, sync::Arc};

use super::{Wanted, api::PodUpdate};

#[derive(Clone, Debug, Default)]
pub struct WantedSet {
    entries: BTreeMap<usize, Wanted>,
    /// The ids of the pods the API reported, by watch, namespace and name.
    reported: BTreeMap<(usize, String, String), usize>,
    next: usize,
}

/// What an update did to the set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The id no longer wanted (the pod is gone, or came back with other IPs).
    pub removed: Option<usize>,
    /// The id of the pod to look for now.
    pub added: Option<usize>,
}

impl WantedSet {
    /// Adds `wanted` under a new id.
    pub fn add(&mut self, wanted: Wanted) -> usize {
        let id = self.next;
        self.next += 1;
        self.entries.insert(id, wanted);
        id
    }

    /// Follows what the API says of a pod.
    pub fn apply(&mut self, update: PodUpdate) -> Change {
        let key = (update.watch, update.namespace, update.name);
        let current = self.reported.get(&key).copied();
        let unchanged = matches!(
            (current.and_then(|id| self.entries.get(&id)), &update.ips),
            (Some(Wanted::Api { ips: old, .. }), Some(new)) if old == new
        );
        if unchanged {
            return Change::default();
        }
        let removed = current.inspect(|id| {
            self.entries.remove(id);
            self.reported.remove(&key);
        });
        let added = update.ips.map(|ips| {
            let (_, namespace, name) = key.clone();
            let id = self.add(Wanted::Api {
                namespace,
                name,
                ips,
            });
            self.reported.insert(key, id);
            id
        });
        Change { removed, added }
    }

    pub fn contains(&self, id: usize) -> bool {
        self.entries.contains_key(&id)
    }

    pub fn get(&self, id: usize) -> Option<&Wanted> {
        self.entries.get(&id)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = usize> + '_ {
        self.entries.keys().copied()
    }

    /// The pods with their ids, for a scan of the node.
    pub fn snapshot(&self) -> Arc<[(usize, Wanted)]> {
        self.entries
            .iter()
            .map(|(id, wanted)| (*id, wanted.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn update(watch: usize, name: &str, ips: Option<&str>) -> PodUpdate {
        PodUpdate {
            watch,
            namespace: "shop".to_owned(),
            name: name.to_owned(),
            ips: ips.map(|ip| vec![ip.parse::<IpAddr>().unwrap()]),
        }
    }

    #[test]
    fn api_pods_come_and_go_under_new_ids() {
        let mut set = WantedSet::default();
        let ip = set.add(Wanted::Ip("198.19.0.2".parse().unwrap()));
        assert_eq!(ip, 0);
        let coffee = set.apply(update(0, "coffee", Some("10.1.0.7")));
        assert_eq!(
            coffee,
            Change {
                removed: None,
                added: Some(1)
            }
        );
        assert_eq!(
            set.get(1),
            Some(&Wanted::Api {
                namespace: "shop".to_owned(),
                name: "coffee".to_owned(),
                ips: vec!["10.1.0.7".parse().unwrap()],
            })
        );
        // The same news again changes nothing; another watch's report of the same pod is its own.
        assert_eq!(
            set.apply(update(0, "coffee", Some("10.1.0.7"))),
            Change::default()
        );
        assert_eq!(
            set.apply(update(1, "coffee", Some("10.1.0.7"))).added,
            Some(2)
        );
        // Back with another IP: the old entry goes, a new one comes.
        assert_eq!(
            set.apply(update(0, "coffee", Some("10.1.0.9"))),
            Change {
                removed: Some(1),
                added: Some(3)
            }
        );
        assert_eq!(
            set.apply(update(0, "coffee", None)),
            Change {
                removed: Some(3),
                added: None
            }
        );
        assert_eq!(set.apply(update(0, "coffee", None)), Change::default());
        assert_eq!(set.ids().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(set.snapshot().len(), 2);
        assert!(set.contains(2) && !set.contains(1) && !set.is_empty());
    }
}
