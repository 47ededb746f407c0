//! A PgBouncer in `pool_mode=transaction` for the third backend of the parity suite.
//!
//! `DAL_TEST_PGBOUNCER_URL` names one that is already running (pointing at the server of
//! `DAL_TEST_POSTGRES_URL`, any database, trust or the URL's password). Otherwise the
//! harness starts one, once per test binary: the `pgbouncer` binary with a configuration
//! and user list in a temporary directory, on a free local port, in front of
//! `DAL_TEST_POSTGRES_URL`'s host and port. A small shell watcher holds the other end of a
//! pipe from this process and stops PgBouncer (and removes the directory) when the pipe
//! closes, that is when the test process exits, however it exits.
//!
//! The configuration is PgBouncer's strict default: no `ignore_startup_parameters` and no
//! prepared-statement support, so a start-up parameter or a prepared statement that
//! outlives a transaction fails the tests, as it would on such a pooler in production.
//! [`lenient_url`] starts a second one that ignores the start-up parameters it does not
//! track (`extra_float_digits`, `options`), as many deployments do: through it a pool
//! *without* the pooler mode connects, and fails the way the product did.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The variable naming a running PgBouncer (transaction mode) for the third backend.
pub const PGBOUNCER_URL_VAR: &str = "DAL_TEST_PGBOUNCER_URL";

/// The PgBouncer the tests use: a URL whose database part is replaced per test.
pub fn pgbouncer_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    let url = URL.get_or_init(|| match std::env::var(PGBOUNCER_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Ok(url),
        _ => start(&crate::postgres_admin_url(), Startup::Strict),
    });
    unwrap_or_explain(url)
}

/// A second PgBouncer (always started by the harness) that ignores `extra_float_digits`
/// and `options` at start-up instead of refusing the connection.
pub fn lenient_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    unwrap_or_explain(URL.get_or_init(|| start(&crate::postgres_admin_url(), Startup::Lenient)))
}

/// Which start-up parameters PgBouncer accepts beyond the ones it tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Startup {
    /// None: a client sending `options` or `extra_float_digits` is refused.
    Strict,
    /// `ignore_startup_parameters = extra_float_digits, options`: accepted and dropped.
    Lenient,
}

fn unwrap_or_explain(url: &Result<String, String>) -> String {
    match url {
        Ok(url) => url.clone(),
        Err(why) => panic!(
            "the PgBouncer half of the parity suite needs a PgBouncer in pool_mode=transaction, and {why}\n\
             Install it (apt-get install pgbouncer) so the harness can start one, or point\n\
             {PGBOUNCER_URL_VAR} at one in front of {var}'s server (pool_mode=transaction),\n\
             or set {backends}=sqlite,postgres to leave it out explicitly.",
            var = crate::POSTGRES_URL_VAR,
            backends = crate::BACKENDS_VAR,
        ),
    }
}

/// The running PgBouncers' watchers; kept for the life of the process, since dropping
/// one's stdin stops its PgBouncer.
static WATCHERS: Mutex<Vec<Child>> = Mutex::new(Vec::new());

/// Starts PgBouncer in front of `server_url`'s server and returns its URL.
pub fn start(server_url: &str, startup: Startup) -> Result<String, String> {
    let binary = find_binary().ok_or("no `pgbouncer` binary was found on PATH or in /usr/sbin")?;
    let server =
        url::Url::parse(server_url).map_err(|e| format!("the server URL is not a URL: {e}"))?;
    let host = server.host_str().unwrap_or("127.0.0.1").to_owned();
    let server_port = server.port().unwrap_or(5432);
    let user = match server.username() {
        "" => "postgres".to_owned(),
        user => user.to_owned(),
    };
    let password = server.password().unwrap_or("").to_owned();

    // Two tries: the port is free when picked, but another process may take it before
    // PgBouncer binds it. (A failed try's watcher removes its directory.)
    let mut last_error = String::new();
    for _ in 0..2 {
        let dir = tempfile::Builder::new()
            .prefix("dal-pgbouncer-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory: {e}"))?
            .keep();
        let port = free_port().map_err(|e| format!("cannot find a free local port: {e}"))?;
        write_config(&dir, &host, server_port, port, &user, &password, startup)
            .map_err(|e| format!("cannot write its configuration in {}: {e}", dir.display()))?;
        match launch(&binary, &dir, port) {
            Ok(child) => {
                WATCHERS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(child);
                let mut url = server.clone();
                url.set_port(Some(port))
                    .map_err(|_| "cannot set the port")?;
                url.set_host(Some("127.0.0.1")).map_err(|e| e.to_string())?;
                return Ok(url.to_string());
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn write_config(
    dir: &Path,
    host: &str,
    server_port: u16,
    port: u16,
    user: &str,
    password: &str,
    startup: Startup,
) -> std::io::Result<()> {
    let quote = |s: &str| s.replace('"', "\"\"");
    std::fs::write(
        dir.join("userlist.txt"),
        format!("\"{}\" \"{}\"\n", quote(user), quote(password)),
    )?;
    let mut ini = std::fs::File::create(dir.join("pgbouncer.ini"))?;
    write!(
        ini,
        "[databases]\n\
         * = host={host} port={server_port}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         pool_mode = transaction\n\
         auth_type = trust\n\
         auth_file = {auth}\n\
         max_client_conn = 2000\n\
         default_pool_size = 20\n\
         server_lifetime = 3600\n\
         log_connections = 0\n\
         log_disconnections = 0\n",
        auth = dir.join("userlist.txt").display(),
    )?;
    if startup == Startup::Lenient {
        writeln!(
            ini,
            "ignore_startup_parameters = extra_float_digits, options"
        )?;
    }
    // PgBouncer refuses to run as root; the watcher then drops to `nobody`, who must be
    // able to read the directory.
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [
        (dir.to_path_buf(), 0o755),
        (dir.join("pgbouncer.ini"), 0o644),
        (dir.join("userlist.txt"), 0o644),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Starts the watcher, which starts PgBouncer, and waits until PgBouncer accepts
/// connections.
fn launch(binary: &Path, dir: &Path, port: u16) -> Result<Child, String> {
    let user_switch = if running_as_root() { "-u nobody" } else { "" };
    // The watcher: PgBouncer in the background, then `cat` until this process's end of
    // the pipe closes, then stop PgBouncer and remove its directory.
    let script = format!(
        "\"$0\" {user_switch} \"$1/pgbouncer.ini\" </dev/null >\"$1/pgbouncer.log\" 2>&1 &\n\
         pid=$!\n\
         cat >/dev/null\n\
         kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf \"$1\"\n"
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(binary)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the watcher shell: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(child);
        }
        let log = std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
        let exited = log.contains("FATAL") || matches!(child.try_wait(), Ok(Some(_)));
        if exited || Instant::now() > deadline {
            // Closing the pipe makes the watcher stop PgBouncer if it is running.
            drop(child.stdin.take());
            let _ = child.wait();
            return Err(format!(
                "{} did not start on port {port}: {}",
                binary.display(),
                log.lines().last().unwrap_or("no output")
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What one server session shows to a new transaction: what some earlier client's
/// transaction left there. Each column is a `, `-separated list, NULL when empty.
/// (The settings PgBouncer itself sets per client, which it tracks, are left out.)
const SESSION_STATE: &str = "SELECT pg_backend_pid() AS pid, \
    (SELECT string_agg(name, ', ' ORDER BY name) FROM pg_prepared_statements) AS prepared_statements, \
    (SELECT string_agg(relname::text, ', ' ORDER BY relname) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temporary_tables, \
    (SELECT string_agg(objid::text, ', ' ORDER BY objid) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks, \
    (SELECT string_agg(name, ', ' ORDER BY name) FROM pg_cursors WHERE is_holdable) AS held_cursors, \
    (SELECT string_agg(name || ' = ' || setting, ', ' ORDER BY name) FROM pg_settings WHERE source = 'session' \
        AND lower(name) NOT IN ('application_name', 'client_encoding', 'datestyle', 'timezone', 'intervalstyle', 'standard_conforming_strings')) AS session_settings";

/// Everything a client left on the server sessions PgBouncer holds for one database
/// (named prepared statements, temporary tables, session advisory locks, `WITH HOLD`
/// cursors, session `SET`s): how many sessions were inspected, and one line per finding
/// (none when they are clean).
///
/// `pooled_url` reaches the database through PgBouncer, `direct_url` directly. The
/// server sessions are the database's other backends, as the server lists them (so no
/// other client may be connected to it directly meanwhile, and none through PgBouncer
/// may be inside a transaction). Each is reached by a client of its own that opens a
/// transaction and keeps it open, so PgBouncer has to lend the next client another
/// session, an idle one first, until every one has been inspected. The inspection uses
/// only the simple protocol and the unnamed statement, and rolls back: it leaves nothing.
pub async fn server_session_leftovers(pooled_url: &str, direct_url: &str) -> (usize, Vec<String>) {
    use std::collections::BTreeSet;
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions as _, Connection as _, Executor as _, Row as _};

    let mut direct = sqlx::PgConnection::connect(direct_url)
        .await
        .expect("a direct connection to the test database");
    let servers: BTreeSet<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
    )
    .persistent(false)
    .fetch_all(&mut direct)
    .await
    .expect("the server sessions of the test database")
    .into_iter()
    .collect();
    direct.close().await.expect("closing the direct connection");

    let options = PgConnectOptions::from_str(pooled_url)
        .expect("a PgBouncer URL")
        .statement_cache_capacity(0)
        .extra_float_digits(None);
    let mut clients = Vec::new();
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    while !servers.is_subset(&seen) && clients.len() < servers.len() + 4 {
        let mut client = options.connect().await.expect("a client through PgBouncer");
        client.execute("BEGIN").await.expect("BEGIN");
        let row = sqlx::query(SESSION_STATE)
            .persistent(false)
            .fetch_one(&mut client)
            .await
            .expect("the server session's state");
        let pid: i32 = row.get("pid");
        seen.insert(pid);
        for what in [
            "prepared_statements",
            "temporary_tables",
            "advisory_locks",
            "held_cursors",
            "session_settings",
        ] {
            if let Some(list) = row.get::<Option<String>, _>(what) {
                found.push(format!("server session {pid}: {what}: {list}"));
            }
        }
        clients.push(client);
    }
    for mut client in clients {
        client.execute("ROLLBACK").await.expect("ROLLBACK");
        client.close().await.expect("closing a client");
    }
    let missed: Vec<&i32> = servers.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "PgBouncer did not lend server sessions {missed:?} to the inspecting clients (lent {seen:?})"
    );
    (servers.len(), found)
}
