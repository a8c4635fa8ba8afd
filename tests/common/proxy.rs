//! A TCP proxy between poolgate and a real server (PostgreSQL, in the fault tests) that can
//! kill, pause or slow the path on demand, the way an outage, a frozen database or a congested
//! network would, while both ends stay untouched.
//!
//! [`Fault`] is switched at run time with [`FaultProxy::set`]; every open connection follows the
//! switch at once.
#![allow(dead_code, reason = "shared by two test binaries, each using a part")]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

/// How the proxy treats traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards everything as it comes.
    Pass,
    /// The server is gone: every open connection is closed and the port refuses new ones.
    Down,
    /// The server is frozen: connections stay open (new ones are accepted) but nothing is
    /// forwarded until the fault ends; what was sent meanwhile is delivered afterwards.
    Stall,
    /// Every chunk of data, in either direction, is delivered this much later.
    Slow(Duration),
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    address: SocketAddr,
    fault: watch::Sender<Fault>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let address = listener.local_addr().unwrap();
        let (fault, watcher) = watch::channel(Fault::Pass);
        let task = tokio::spawn(serve(listener, upstream, watcher));
        Self { address, fault, task }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Switches every connection, open or future, to `fault`.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listening socket that can be bound again to the same port right after it is closed.
fn listen(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// Accepts connections while the server is up; while it is [`Fault::Down`] the port is closed,
/// so connecting is refused as it would be by a host without the server.
async fn serve(mut listener: tokio::net::TcpListener, upstream: SocketAddr, mut fault: watch::Receiver<Fault>) {
    let address = listener.local_addr().unwrap();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => Some(accepted),
            _ = fault.wait_for(|fault| *fault == Fault::Down) => None,
        };
        match accepted {
            Some(Ok((client, _))) => {
                tokio::spawn(relay(client, upstream, fault.clone()));
            }
            Some(Err(_)) => {}
            None => {
                drop(listener);
                if fault.wait_for(|fault| *fault != Fault::Down).await.is_err() {
                    return;
                }
                listener = listen(address).unwrap();
            }
        }
    }
}

/// Carries one client connection to the server and back until either side closes or the
/// server goes down.
async fn relay(client: TcpStream, upstream: SocketAddr, mut fault: watch::Receiver<Fault>) {
    // A frozen server does not complete the handshake either.
    match fault.wait_for(|fault| *fault != Fault::Stall).await.map(|fault| *fault) {
        Ok(Fault::Down) | Err(_) => return,
        Ok(_) => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Whichever ends first, both sockets are dropped: the server is gone for this client.
    tokio::select! {
        () = pump(client_read, server_write, fault.clone()) => {}
        () = pump(server_read, client_write, fault.clone()) => {}
        _ = fault.wait_for(|fault| *fault == Fault::Down) => {}
    }
}

/// Copies one direction chunk by chunk, holding each chunk while the proxy stalls and delaying
/// it while the proxy is slow.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut fault: watch::Receiver<Fault>) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let Ok(now) = fault.wait_for(|fault| *fault != Fault::Stall).await.map(|fault| *fault) else { return };
        if let Fault::Slow(delay) = now {
            tokio::time::sleep(delay).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
