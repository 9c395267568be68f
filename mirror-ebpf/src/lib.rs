//! Lets `mirror-user` depend on this crate, so cargo rebuilds the programs when it changes.
#![no_std]
