//! Descriptor passing: a socket and a pidfd make the round trip and still work; a truncated
//! control message keeps its data, reports its descriptors lost, and leaks nothing.

mod common;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitCode;

use common::{MUST, Test, exit_at_eof, open_fds, reap, recv_n, send};
use harrow_real::sys::{
    ExitStatus, MAX_FDS, Pidfd, Prelude, RecvOutcome, SendOutcome, Signal, SignalOutcome, SysError,
    channel_pair, fork_child, recv_with_fds, send_with_fds, wait_readable,
};

fn main() -> ExitCode {
    common::main(&[
        Test {
            name: "a_socket_and_a_pidfd_make_the_round_trip",
            run: a_socket_and_a_pidfd_make_the_round_trip,
        },
        Test {
            name: "a_truncated_control_message_closes_what_arrived",
            run: a_truncated_control_message_closes_what_arrived,
        },
    ])
}

/// Whether `fd` has close-on-exec set.
fn cloexec(fd: &OwnedFd) -> bool {
    rustix::io::fcntl_getfd(fd)
        .unwrap()
        .contains(rustix::io::FdFlags::CLOEXEC)
}

fn a_socket_and_a_pidfd_make_the_round_trip() {
    let (tx, rx) = channel_pair().unwrap();
    let (payload_near, payload_far) = channel_pair().unwrap();
    let (_child_ours, child_theirs) = channel_pair().unwrap();
    let mut child = fork_child(Prelude::STANDARD, child_theirs, exit_at_eof).unwrap();

    let fds: [BorrowedFd<'_>; 2] = [payload_far.as_fd(), child.pidfd().as_fd()];
    assert_eq!(
        send_with_fds(tx.as_fd(), b"hi", &fds).unwrap(),
        SendOutcome::Complete
    );
    drop(payload_far);
    assert!(wait_readable(rx.as_fd(), Some(MUST)).unwrap());
    let mut buf = [0u8; 16];
    let got = recv_with_fds(rx.as_fd(), &mut buf, MAX_FDS).unwrap();
    assert_eq!(got.outcome, RecvOutcome::Data(2));
    assert_eq!(&buf[..2], b"hi");
    let [socket, pidfd]: [OwnedFd; 2] = got.fds.try_into().expect("two descriptors");
    assert!(
        cloexec(&socket) && cloexec(&pidfd),
        "received descriptors must be close-on-exec"
    );

    // The received socket is the far end of the payload pair.
    send(socket.as_fd(), b"ping");
    assert_eq!(recv_n(payload_near.as_fd(), 4), b"ping");
    // The received pidfd is the child: killing through it ends the child.
    let pidfd = Pidfd::from_owned(pidfd);
    assert_eq!(
        pidfd.send_signal(Signal::KILL).unwrap(),
        SignalOutcome::Delivered
    );
    assert_eq!(reap(&mut child), ExitStatus::Signaled(libc::SIGKILL));
    assert_eq!(
        pidfd.send_signal(Signal::KILL).unwrap(),
        SignalOutcome::Gone
    );
}

/// Eight descriptors sent, room for one: the data arrives, the descriptors are reported
/// lost, and afterwards exactly the descriptors we had before are open.
fn a_truncated_control_message_closes_what_arrived() {
    let (tx, rx) = channel_pair().unwrap();
    let before = open_fds();
    let (a, _b) = channel_pair().unwrap();
    let copies: Vec<OwnedFd> = (0..MAX_FDS).map(|_| a.try_clone().unwrap()).collect();
    let borrowed: Vec<BorrowedFd<'_>> = copies.iter().map(|f| f.as_fd()).collect();
    assert_eq!(
        send_with_fds(tx.as_fd(), b"x", &borrowed).unwrap(),
        SendOutcome::Complete
    );
    drop(borrowed);
    drop(copies);
    drop(a);
    drop(_b);
    assert!(wait_readable(rx.as_fd(), Some(MUST)).unwrap());
    let mut buf = [0u8; 4];
    let got = recv_with_fds(rx.as_fd(), &mut buf, 1).unwrap();
    assert_eq!(
        got.outcome,
        RecvOutcome::Data(1),
        "the data byte still arrives"
    );
    assert!(got.fds_lost, "the truncation is reported");
    assert!(
        got.fds.is_empty(),
        "a partial set of descriptors is never handed over"
    );
    drop(got);
    assert_eq!(open_fds(), before, "a truncated receive leaked descriptors");
    let too_many = vec![tx.as_fd(); MAX_FDS + 1];
    let err = send_with_fds(tx.as_fd(), b"x", &too_many).unwrap_err();
    assert!(matches!(err, SysError::TooManyFds { .. }), "{err:?}");
}
