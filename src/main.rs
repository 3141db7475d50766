//! The `clp-gpu` binary: the whole command line is [`clp_gpu::cli::run`].

fn main() -> std::process::ExitCode {
    clp_gpu::cli::run(std::env::args_os())
}
