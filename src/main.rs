#[actix_web::main]
async fn main() -> std::process::ExitCode {
    // Before the command line is read, so that its defaults from the environment see `.env` too.
    let _ = dotenvy::dotenv();
    let cli = match rollcall::cli::parse() {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("rollcall: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rollcall::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rollcall: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
