use clap::Parser;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    // Before the command line is read, so that its defaults from the environment see `.env` too.
    let _ = dotenvy::dotenv();
    let cli = rollcall::cli::Cli::parse();
    match rollcall::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rollcall: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
