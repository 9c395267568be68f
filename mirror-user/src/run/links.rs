//! Link events of the agent's network namespace (`RTNLGRP_LINK`): what makes the agent look for
//! pods again, and tells it an attached interface is gone.
use anyhow::Context as _;
use futures::{StreamExt as _, channel::mpsc::UnboundedReceiver};
use rtnetlink::{
    MulticastGroup,
    packet_core::{NetlinkMessage, NetlinkPayload},
    packet_route::RouteNetlinkMessage,
    sys::SocketAddr,
};
use tokio::task::JoinHandle;

use crate::pod::probe::LinkFacts;

/// A change of a link in the agent's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// `RTM_NEWLINK`: a link appeared or changed (name, state, peer).
    Changed(LinkFacts),
    /// `RTM_DELLINK`: the link is gone (deleted, or moved to another namespace).
    Removed(LinkFacts),
}

/// The subscription; it ends when dropped.
pub struct LinkEvents {
    messages: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    connection: JoinHandle<()>,
}

impl LinkEvents {
    /// Subscribes in the calling thread's network namespace.
    pub fn subscribe() -> anyhow::Result<Self> {
        let (connection, _handle, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
                .context("subscribing to netlink link events")?;
        Ok(Self {
            messages,
            connection: tokio::spawn(connection),
        })
    }

    /// The next event; `None` if the subscription broke.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        loop {
            let (message, _) = self.messages.next().await?;
            match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    return Some(LinkEvent::Changed(LinkFacts::of(&link)));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    return Some(LinkEvent::Removed(LinkFacts::of(&link)));
                }
                _ => {}
            }
        }
    }
}

impl Drop for LinkEvents {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
