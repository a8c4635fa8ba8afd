//! The `poolgate` binary: parse the command line and run it.

use std::process::ExitCode;

#[actix_web::main]
async fn main() -> ExitCode {
    poolgate::cli::run().await
}
