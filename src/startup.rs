//! Wiring: settings in, a bound server out.
//!
//! [`build`] loads and validates the policies, checks that every pool's principal fits the
//! schema, connects and migrates the database, fetches every pool's keys, starts the background
//! tasks (key refreshers, the change follower that keeps caches coherent, the revocation purge),
//! waits until changes are watched, and binds the HTTP server to the given listener, and the
//! gRPC server to `server.grpc_bind`. Anything wrong refuses to
//! start with every problem listed; a pool whose keys cannot be fetched yet does not, it only
//! keeps `/readyz` at 503 until its keys arrive.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

use crate::config::Settings;
use crate::decision::PolicySources;
use crate::decision::reload::{self, Policies};
use crate::decision_log::DecisionLog;
use crate::filter::{Dialect, SearchDb};
use crate::forward::resources::ResourceStore;
use crate::grpc::GrpcServer;
use crate::http::openapi::{self, ApiDoc};
use crate::http::pipeline::{limit_headers, request_id};
use crate::http::state::AppState;
use crate::metrics::Metrics;
use crate::principal::coherence::{self, Caches};
use crate::principal::store::PrincipalStore;
use crate::token::Verifier;
use crate::{db, decision, dev, http};

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
    grpc: Option<GrpcServer>,
    background: Vec<tokio::task::JoinHandle<()>>,
    decision_log: Arc<DecisionLog>,
}

impl Application {
    /// The port the server listens on (useful when bound to port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the gRPC server, when `server.grpc_bind` is set.
    pub fn grpc_port(&self) -> Option<u16> {
        self.grpc.as_ref().map(|grpc| grpc.address().port())
    }

    /// Serves until the server stops (SIGINT or SIGTERM: in-flight requests finish first),
    /// then stops the gRPC server and writes every queued decision record.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(grpc) = self.grpc {
            grpc.stop().await;
        }
        for task in self.background {
            task.abort();
        }
        let decision_log = self.decision_log;
        let _ = tokio::task::spawn_blocking(move || decision_log.close()).await;
        result
    }
}

/// Builds the application on `listener`.
pub async fn build(settings: Settings, listener: TcpListener) -> anyhow::Result<Application> {
    dev::ensure_keys(&settings)?;
    let sources = PolicySources::from(&settings);
    let folder = decision::load(&sources)?;
    let db = db::connect(&settings.database).await?;
    db::migrate(&db, &settings.database).await?;

    let metrics = Arc::new(Metrics::new().context("cannot register metrics")?);
    let policies = Arc::new(Policies::new(folder, sources, Arc::clone(&metrics)));
    let verifier =
        Verifier::start(&settings, Arc::clone(&metrics)).await.context("cannot build the key-set HTTP client")?;

    let resources = Arc::new(ResourceStore::new(db.clone(), &settings));
    let dialect = if db::is_sqlite(&settings.database.url) { Dialect::Sqlite } else { Dialect::Postgres };
    let search_db = SearchDb::new(db.clone(), dialect, settings.database.query_timeout);
    let mappings = Arc::new(
        settings
            .resources
            .iter()
            .filter_map(|(type_name, resource)| Some((type_name.clone(), resource.mapping.clone()?)))
            .collect(),
    );
    let authzen = Arc::new(crate::authzen::Authzen::new(&settings));
    let principals = Arc::new(PrincipalStore::new(db, &settings, Arc::clone(&metrics)));
    let decision_log = Arc::new(
        DecisionLog::start(
            &settings.decision_log,
            settings.pools.iter().map(|pool| pool.name.as_str()),
            Arc::clone(&metrics),
        )
        .context("cannot open the decision log")?,
    );
    let state = web::Data::new(AppState {
        verifier,
        principals: Arc::clone(&principals),
        policies: Arc::clone(&policies),
        resources: Arc::clone(&resources),
        mappings,
        search_db,
        decision_log: Arc::clone(&decision_log),
        metrics,
        max_body_bytes: settings.server.max_body_bytes,
        request_timeout: settings.server.request_timeout,
        authzen,
    });
    let mut background: Vec<_> = settings
        .pools
        .iter()
        .map(|pool| {
            let state = state.clone();
            let pool = pool.name.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(state.verifier.jwks().next_refresh_in(&pool).await).await;
                    state.verifier.jwks().refresh(&pool).await;
                }
            })
        })
        .collect();
    let (following, watching) = tokio::sync::oneshot::channel();
    background.push(tokio::spawn(coherence::follow(
        settings.database.url.clone(),
        settings.database.change_poll_interval,
        Caches { principals: Arc::clone(&principals), resources },
        following,
    )));
    // Serving starts once changes are watched, so no change can slip past a cache filled at
    // start; a database that cannot be watched yet delays the start by at most this bound, and
    // the watcher flushes the caches when it does connect.
    if tokio::time::timeout(settings.database.query_timeout, watching).await.is_err() {
        tracing::warn!("changes are not watched yet; caches are flushed once they are");
    }
    background.push(reload::follow(policies, settings.policies.watch).context("cannot watch the policies")?);
    let purge_interval = settings.database.purge_interval;
    background.push(tokio::spawn(async move {
        loop {
            tokio::time::sleep(purge_interval).await;
            match principals.purge_expired_revocations().await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged expired revocations"),
                Err(err) => tracing::warn!(error = %err, "cannot purge expired revocations"),
            }
        }
    }));

    let grpc = match settings.server.grpc_bind {
        Some(address) => {
            let grpc = GrpcServer::start(address, state.clone().into_inner())
                .await
                .with_context(|| format!("cannot listen on server.grpc_bind {address}"))?;
            tracing::info!(grpc_bind = %grpc.address(), "gRPC ext_authz listening");
            Some(grpc)
        }
        None => None,
    };
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        let (app, api) = App::new()
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .app_data(state.clone())
            .configure(http::routes)
            .split_for_parts();
        let document = openapi::render(api);
        app.wrap(from_fn(limit_headers))
            .wrap(from_fn(request_id))
            .app_data(web::Data::new(document))
            .route("/openapi.json", web::get().to(openapi::openapi_json))
    })
    .client_request_timeout(settings.server.request_timeout)
    .listen(listener)?
    .run();
    Ok(Application { port, server, grpc, background, decision_log })
}
