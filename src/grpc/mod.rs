//! The gRPC listener, `server.grpc_bind` (off unless set): Envoy's external authorization
//! service `envoy.service.auth.v3.Authorization` ([`ext_authz`]) and the gRPC health service
//! `grpc.health.v1.Health`, which reports `SERVING`.
//!
//! It runs on a Tokio runtime and thread of its own, beside actix-web's workers, and reads the
//! same [`AppState`]. tonic serves it without its axum router: `Services` sends each call to
//! its service by the path's service name. `startup.rs` starts it and stops it after the HTTP
//! server.

pub mod ext_authz;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use tokio::sync::oneshot;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;

use crate::error::chain;
use crate::grpc::ext_authz::ExtAuthz;
use crate::http::state::AppState;

/// A running gRPC server.
pub struct GrpcServer {
    address: SocketAddr,
    shutdown: oneshot::Sender<()>,
    stopped: oneshot::Receiver<()>,
    /// How long the calls in flight may take to finish when it stops.
    grace: Duration,
}

impl GrpcServer {
    /// Binds `address` and serves on it from a thread of its own, until [`GrpcServer::stop`]
    /// or until the value is dropped.
    pub async fn start(address: SocketAddr, state: Arc<AppState>) -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("poolgate-grpc")
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let incoming = {
            let _runtime = runtime.enter();
            TcpIncoming::from(tokio::net::TcpListener::from_std(listener)?).with_nodelay(Some(true))
        };
        let grace = state.request_timeout;
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter.set_serving::<AuthorizationServer<ExtAuthz>>().await;
        let services = Services { authorization: AuthorizationServer::new(ExtAuthz::new(state)), health };
        let (shutdown, signal) = oneshot::channel::<()>();
        let (done, stopped) = oneshot::channel();
        std::thread::Builder::new().name("poolgate-grpc".into()).spawn(move || {
            let served = runtime.block_on(tonic::transport::Server::builder().serve_with_incoming_shutdown(
                services,
                incoming,
                async {
                    // A dropped sender stops the server too.
                    let _ = signal.await;
                },
            ));
            if let Err(err) = served {
                tracing::error!(error = chain(&err), "the gRPC server failed");
            }
            runtime.shutdown_timeout(Duration::from_secs(1));
            let _ = done.send(());
        })?;
        Ok(Self { address, shutdown, stopped, grace })
    }

    /// The address it listens on (its port is chosen when bound to port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting calls, and waits for the calls in flight, at most `server.request_timeout`.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        if tokio::time::timeout(self.grace, self.stopped).await.is_err() {
            tracing::warn!(grace = ?self.grace, "the gRPC server did not stop in time");
        }
    }
}

/// The two services, routed by the service name in the call's path
/// (`/<package>.<Service>/<Method>`); the authorization service answers every other path with
/// `UNIMPLEMENTED`.
#[derive(Clone)]
struct Services<A, H> {
    authorization: A,
    health: H,
}

impl<A, H> Service<http::Request<Body>> for Services<A, H>
where
    A: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    A::Future: Send + 'static,
    H: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + NamedService,
    H::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both generated servers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let service = request.uri().path().trim_start_matches('/').split('/').next().unwrap_or_default();
        if service == H::NAME {
            Box::pin(self.health.call(request))
        } else {
            Box::pin(self.authorization.call(request))
        }
    }
}
