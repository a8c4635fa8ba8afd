//! `spawn_app`: a real poolgate on port 0 against a fresh database and the fake issuer, plus
//! request helpers and [`eventually`]. Set `TEST_LOG=1` to see the server's logs.
//! Shared by both test binaries, each of which uses a part of it.
#![allow(dead_code, reason = "shared by two test binaries, each using a part")]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use toml::Table;

use crate::fake_issuer::{CLIENT_ID, FakeIssuer, POOLS};

/// Where a test's database lives.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// A fresh database on the server behind this admin URL.
    Postgres(String),
}

/// Polls `condition` until it holds, for at most `limit`; whether it held. The one place tests
/// wait: a test awaits what it needs rather than sleeping for a fixed time.
pub async fn eventually<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the tests run in CI, where a missing component fails a test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|value| !value.is_empty() && value != "false")
}

/// Skips a test on a developer's machine that lacks `component`, saying so; fails it in CI.
pub fn skip_unless_ci(component: &str, reason: &str) {
    assert!(!in_ci(), "{component} is required under CI: {reason}");
    eprintln!("skipped: {component} is missing ({reason}); .ci/run provides it");
}

/// A third-party binary (a proxy, grpcurl): on the `PATH` or in the sbin and bin folders.
/// Missing, the test is skipped (`None`), saying so; under CI it fails.
pub fn require_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        skip_unless_ci(name, ".ci/install-proxies installs it");
    }
    found
}

/// SQLite always; PostgreSQL when `POOLGATE_TEST_POSTGRES_URL` is set (skipping it says so,
/// and fails under CI).
pub fn backends() -> Vec<Backend> {
    match postgres_url_quiet() {
        Some(url) => vec![Backend::Sqlite, Backend::Postgres(url)],
        None => {
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| skip_unless_ci("PostgreSQL", "POOLGATE_TEST_POSTGRES_URL is not set"));
            vec![Backend::Sqlite]
        }
    }
}

fn postgres_url_quiet() -> Option<String> {
    std::env::var("POOLGATE_TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty())
}

/// A fresh, migrated-on-start database that is dropped with the value.
pub struct TestDatabase {
    pub url: String,
    admin: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("poolgate.db").display());
                Self { url, admin: None, _dir: dir }
            }
            Backend::Postgres(admin_url) => {
                let name = format!("poolgate_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
                sqlx::query(&format!(r#"CREATE DATABASE "{name}""#)).execute(&mut conn).await.unwrap();
                let mut url = reqwest::Url::parse(admin_url).unwrap();
                url.set_path(&name);
                Self { url: url.to_string(), admin: Some((admin_url.clone(), name)), _dir: dir }
            }
        }
    }

    /// The PostgreSQL database's name.
    pub fn name(&self) -> Option<&str> {
        self.admin.as_ref().map(|(_, name)| name.as_str())
    }

    /// PostgreSQL only: refuse (and cut) or allow again every connection to the database.
    pub async fn set_reachable(&self, reachable: bool) {
        let (admin_url, name) = self.admin.as_ref().unwrap();
        let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
        sqlx::query(&format!(r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS {reachable}"#))
            .execute(&mut conn)
            .await
            .unwrap();
        if !reachable {
            let kill = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'");
            sqlx::query(&kill).execute(&mut conn).await.unwrap();
        }
    }

    /// The single integer a `SELECT COUNT(*)` returns.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url).await.unwrap();
        let sql = sql.replacen("COUNT(*)", "CAST(COUNT(*) AS BIGINT)", 1);
        let (count,): (i64,) = sqlx::query_as(&sql).fetch_one(&mut conn).await.unwrap();
        count
    }

    /// Runs one statement as an operator would.
    pub async fn execute(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.admin.take() else { return };
        // Drop runs inside the test's runtime; a separate thread with its own runtime can block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                    let _ = sqlx::query(&sql).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// The configuration a test app starts from: the three pools of the fake issuer, the repo's
/// policies, short caches. Tests edit the table before spawning.
pub fn base_config(issuer: &FakeIssuer, database_url: &str) -> Table {
    let mut pools = Table::new();
    for pool in POOLS {
        let mut settings: Table = toml::from_str(&format!(
            r#"
            issuer = "{issuer}"
            token_use = ["id", "access"]
            client_ids = ["{CLIENT_ID}"]
            "#,
            issuer = issuer.issuer(pool)
        ))
        .unwrap();
        if pool == "merchant" {
            settings
                .insert("attributes".into(), toml::from_str::<Table>(r#"org_id = "custom:org_id""#).unwrap().into());
        }
        pools.insert(pool.into(), settings.into());
    }
    let mut config: Table = toml::from_str(&format!(
        r#"
        [server]
        bind = "127.0.0.1:0"
        [database]
        url = "{database_url}"
        [policies]
        dir = "{policies}"
        [jwks]
        refresh_interval = "1h"
        unknown_kid_cooldown = "10s"
        [cache]
        flags_ttl = "1s"
        [decision_log]
        sink = "/dev/null"
        "#,
        policies = repo_path("policies").display()
    ))
    .unwrap();
    config.insert("pools".into(), pools.into());
    config
}

/// Copies the repository's policy files (not `policies/tests`) into `dir`.
pub fn copy_policies(dir: &Path) {
    for entry in std::fs::read_dir(repo_path("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// A path inside the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A running poolgate.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    _config_dir: tempfile::TempDir,
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `decision` field, or the `error` code.
    pub fn outcome(&self) -> &str {
        self.body["decision"].as_str().or(self.body["error"].as_str()).unwrap_or("<none>")
    }
}

/// Starts poolgate with `config`, loaded through the real configuration loader.
pub async fn spawn_app(config: &Table) -> TestApp {
    try_spawn_app(config).await.unwrap()
}

/// Like [`spawn_app`], but returns the start-up error.
pub async fn try_spawn_app(config: &Table) -> anyhow::Result<TestApp> {
    init_test_log();
    let config_dir = tempfile::tempdir()?;
    let path = config_dir.path().join("poolgate.toml");
    std::fs::write(&path, toml::to_string(config)?)?;
    let settings = poolgate::config::load(Some(&path))?;
    let listener = TcpListener::bind(settings.server.bind)?;
    let app = poolgate::startup::build(settings, listener).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    Ok(TestApp { address, client, _config_dir: config_dir })
}

fn init_test_log() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            poolgate::telemetry::init(&poolgate::config::LogSettings {
                format: poolgate::config::LogFormat::Pretty,
                filter: "debug".into(),
            });
        }
    });
}

impl TestApp {
    /// `POST /v1/check` with `token` as the bearer.
    pub async fn check(&self, token: &str, body: Value) -> Answer {
        self.post("/v1/check", Some(token), body).await
    }

    /// `POST path` with an optional bearer token.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        let mut request = self.client.post(format!("{}{path}", self.address)).json_body(&body);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        read(request.send().await.unwrap()).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        read(self.client.get(format!("{}{path}", self.address)).send().await.unwrap()).await
    }
}

/// `reqwest` is built without its `json` feature; this is the one place bodies are encoded.
trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header("Content-Type", "application/json").body(body.to_string())
    }
}

pub async fn read(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }));
    Answer { status, headers, body }
}

/// A check body for `action` on a resource.
pub fn ask(action: &str, resource_type: &str, id: &str, attributes: Value) -> Value {
    json!({ "action": action, "resource": { "type": resource_type, "id": id, "attributes": attributes } })
}

/// Issuer, database and app of one test, kept alive together.
pub struct World {
    pub issuer: FakeIssuer,
    pub db: TestDatabase,
    pub app: TestApp,
}

impl World {
    /// A poolgate on SQLite with the base configuration.
    pub async fn start() -> Self {
        Self::start_with(&Backend::Sqlite, |_| {}).await
    }

    /// A poolgate on `backend` with the base configuration edited by `edit`.
    pub async fn start_with(backend: &Backend, edit: impl FnOnce(&mut Table)) -> Self {
        let issuer = FakeIssuer::start();
        let db = TestDatabase::create(backend).await;
        let mut config = base_config(&issuer, &db.url);
        edit(&mut config);
        let app = spawn_app(&config).await;
        Self { issuer, db, app }
    }
}

/// `config[section][key] = value`, creating the section.
pub fn set(config: &mut Table, path: &[&str], value: impl Into<toml::Value>) {
    let (last, sections) = path.split_last().unwrap();
    let mut table = config;
    for section in sections {
        table = table.entry(section.to_string()).or_insert_with(|| Table::new().into()).as_table_mut().unwrap();
    }
    table.insert(last.to_string(), value.into());
}

/// poolgate as a child process (`poolgate serve`), for tests that need separate processes or
/// its real log output. Killed on drop.
pub struct ProcessApp {
    pub address: String,
    /// Its stderr: the diagnostic log.
    pub log: PathBuf,
    /// Its stdout: the decision log, at the default sink.
    pub stdout: PathBuf,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl ProcessApp {
    /// Starts `poolgate serve` with `config` on a free port and waits until it answers.
    pub async fn start(config: &Table) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut config = config.clone();
        set(&mut config, &["server", "bind"], format!("127.0.0.1:{port}"));
        let path = dir.path().join("poolgate.toml");
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        let log = dir.path().join("poolgate.log");
        let stdout = dir.path().join("stdout.log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_poolgate"))
            .args(["serve", "--config", path.to_str().unwrap()])
            .env_remove("POOLGATE_CONFIG")
            .env_remove("RUST_LOG")
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .spawn()
            .unwrap();
        let app = Self { address: format!("http://127.0.0.1:{port}"), log, stdout, child, _dir: dir };
        let client = reqwest::Client::new();
        let health = format!("{}/healthz", app.address);
        let up = eventually(Duration::from_secs(10), || async { client.get(&health).send().await.is_ok() }).await;
        assert!(up, "poolgate did not start: {}", std::fs::read_to_string(&app.log).unwrap_or_default());
        app
    }

    /// Sends the process a signal, e.g. `HUP` or `TERM`.
    pub fn signal(&self, name: &str) {
        let status =
            std::process::Command::new("kill").args([format!("-{name}"), self.child.id().to_string()]).status();
        assert!(status.unwrap().success());
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// A client view of the process, for the request helpers.
    pub fn client(&self) -> TestApp {
        TestApp {
            address: self.address.clone(),
            client: reqwest::Client::new(),
            _config_dir: tempfile::tempdir().unwrap(),
        }
    }
}

impl Drop for ProcessApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin URL of `POOLGATE_TEST_POSTGRES_URL`, for tests that need PostgreSQL itself;
/// `None`, saying the test is skipped, when it is not set (a failure under CI).
pub fn postgres_url() -> Option<String> {
    let url = postgres_url_quiet();
    if url.is_none() {
        skip_unless_ci("PostgreSQL", "POOLGATE_TEST_POSTGRES_URL is not set");
    }
    url
}

impl ProcessApp {
    /// The process id, e.g. to read `/proc/<pid>/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// One keep-alive HTTP/1.1 connection: a request, then its whole response, at a time.
pub struct HttpConnection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// A response read off an [`HttpConnection`], whole.
pub struct RawAnswer {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server said `Connection: close`: this was the connection's last response.
    pub closing: bool,
}

impl HttpConnection {
    /// Connects to `address`.
    pub async fn open(address: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buffer: Vec::with_capacity(4096) })
    }

    /// Sends `request` and reads the response, which must carry a `Content-Length`.
    pub async fn exchange(&mut self, request: &[u8]) -> std::io::Result<RawAnswer> {
        self.stream.write_all(request).await?;
        let head_end = loop {
            if let Some(at) = self.buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end]).map_err(std::io::Error::other)?;
        let status = head.get(9..12).and_then(|code| code.parse().ok());
        let header = |wanted: &str| {
            head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case(wanted).then(|| value.trim())
            })
        };
        let length = header("content-length").and_then(|length| length.parse::<usize>().ok());
        let closing = header("connection").is_some_and(|value| value.eq_ignore_ascii_case("close"));
        let (Some(status), Some(length)) = (status, length) else {
            return Err(std::io::Error::other(format!("unreadable response head: {head:?}")));
        };
        while self.buffer.len() < head_end + length {
            self.fill().await?;
        }
        let body = self.buffer[head_end..head_end + length].to_vec();
        self.buffer.drain(..head_end + length);
        Ok(RawAnswer { status, body, closing })
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        self.buffer.reserve(4096);
        if self.stream.read_buf(&mut self.buffer).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}
