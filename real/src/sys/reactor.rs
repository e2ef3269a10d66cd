//! Registering a descriptor with tokio's reactor (feature `tokio`).

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// `fd`, owned, registered with the current tokio runtime's reactor for readability. Panics
/// outside a runtime, or in one without IO enabled, as tokio does.
pub fn register_readable(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: tokio's contract is that the raw descriptor stays open and names the same open
    // file description for the `AsyncFd`'s whole life. The `AsyncFd` owns `fd`: an `OwnedFd`
    // is open until dropped, and its raw number never changes; nothing else can close it.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into_parts().1)
}
