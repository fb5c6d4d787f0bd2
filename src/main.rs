use clap::Parser;

/// mimalloc rather than the system allocator: a call allocates and frees
/// many small buffers across threads (HTTP/2 frames, protobuf, sqlx rows),
/// where glibc's malloc spent 12 % of a loaded server's samples
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    customer_context::telemetry::process_started();
    let cli = customer_context::cli::Cli::parse();
    match customer_context::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
