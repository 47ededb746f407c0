//! `sync-server`: serves sync over HTTP with the settings of the environment (see
//! [`sync_server::ServerConfig`] and [`sync_server::main_from_env`]).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sync_server::main_from_env().await
}
