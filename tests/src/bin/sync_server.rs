//! The sync server as the suite runs it in a process of its own (to kill it mid-batch,
//! or read its logs): the same entry point as `sync-server`'s binary.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sync_server::main_from_env().await
}
