//! Channel send/recv outcomes: would-block, data, end of stream, peer gone — and no SIGPIPE.

mod common;

use std::os::fd::AsFd;
use std::process::ExitCode;

use common::{Test, reap};
use harrow_real::sys::{
    ExitStatus, IoMode, Prelude, RecvOutcome, SendOutcome, SocketKind, channel_pair, fork_child,
    recv, send_all, socket_pair,
};

fn main() -> ExitCode {
    common::main(&[
        Test {
            name: "outcomes_of_send_and_recv",
            run: outcomes_of_send_and_recv,
        },
        Test {
            name: "a_gone_peer_is_an_outcome_not_a_sigpipe",
            run: a_gone_peer_is_an_outcome_not_a_sigpipe,
        },
        Test {
            name: "seqpacket_keeps_record_boundaries",
            run: seqpacket_keeps_record_boundaries,
        },
    ])
}

fn outcomes_of_send_and_recv() {
    let (a, b) = channel_pair().unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(recv(b.as_fd(), &mut buf).unwrap(), RecvOutcome::WouldBlock);
    assert_eq!(send_all(a.as_fd(), b"abc").unwrap(), SendOutcome::Complete);
    assert_eq!(recv(b.as_fd(), &mut buf).unwrap(), RecvOutcome::Data(3));
    // A full buffer: part of a large write goes, the rest would block.
    let big = vec![7u8; 4 << 20];
    let SendOutcome::WouldBlock { sent } = send_all(a.as_fd(), &big).unwrap() else {
        panic!("4 MiB fit in a socket buffer")
    };
    assert!(sent > 0 && sent < big.len());
    // b closes with our data unread: a's receive sees ECONNRESET as PeerGone.
    drop(b);
    assert_eq!(recv(a.as_fd(), &mut buf).unwrap(), RecvOutcome::PeerGone);
    assert_eq!(
        send_all(a.as_fd(), b"x").unwrap(),
        SendOutcome::PeerGone { sent: 0 }
    );

    let (c, d) = channel_pair().unwrap();
    drop(c);
    assert_eq!(recv(d.as_fd(), &mut buf).unwrap(), RecvOutcome::Eof);
}

/// In a forked child SIGPIPE has its default action (the prelude resets it), so a send
/// without MSG_NOSIGNAL would kill it; the child exits 0 only if it saw PeerGone.
fn a_gone_peer_is_an_outcome_not_a_sigpipe() {
    let (_ours, theirs) = channel_pair().unwrap();
    let mut child = fork_child(Prelude::STANDARD, theirs, |_| {
        let (a, b) = channel_pair().unwrap();
        drop(b);
        match send_all(a.as_fd(), b"x") {
            Ok(SendOutcome::PeerGone { sent: 0 }) => 0,
            _ => 1,
        }
    })
    .unwrap();
    assert_eq!(reap(&mut child), ExitStatus::Exited(0));
}

fn seqpacket_keeps_record_boundaries() {
    let (a, b) = socket_pair(SocketKind::SeqPacket, IoMode::NonBlocking).unwrap();
    assert_eq!(send_all(a.as_fd(), b"one").unwrap(), SendOutcome::Complete);
    assert_eq!(send_all(a.as_fd(), b"two").unwrap(), SendOutcome::Complete);
    let mut buf = [0u8; 16];
    assert_eq!(recv(b.as_fd(), &mut buf).unwrap(), RecvOutcome::Data(3));
    assert_eq!(recv(b.as_fd(), &mut buf).unwrap(), RecvOutcome::Data(3));
    drop(a);
    assert_eq!(recv(b.as_fd(), &mut buf).unwrap(), RecvOutcome::Eof);
}
