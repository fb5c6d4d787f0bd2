use clap::Parser;

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
