//! The `clp-gpu` binary: the whole command line is [`clp_gpu::cli::run`].

fn main() -> std::process::ExitCode {
    // SAFETY: the first statement of `main`: no other thread exists yet.
    unsafe { clp_gpu::backend::gpu::quiet_mesa_device_select() };
    clp_gpu::cli::run(std::env::args_os())
}
