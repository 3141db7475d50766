//! The `clp-gpu` command line: parse, build, run, print. All logic lives in the library.

mod apply_cli;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "clp-gpu", version, about = "CLP-Transfer onto a new tokenizer, on any GPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a target model: source weights + the helper's tokenizer (CLP-Transfer).
    Apply(apply_cli::ApplyArgs),
    /// List every GPU adapter wgpu can use, with the limits that matter to clp-gpu.
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Apply(args) => apply_cli::run(args),
        Command::Devices { json } => devices(json),
    }
}

fn devices(json: bool) -> Result<()> {
    let adapters = clp_gpu::gpu::list_adapters();
    if json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(());
    }
    if adapters.is_empty() {
        anyhow::bail!(clp_gpu::Error::NoAdapter { filter: String::new() });
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("[{i}] {a}");
        println!(
            "    max storage binding {} MiB, max buffer {} MiB, workgroup storage {} KiB, SHADER_F16 {}, SUBGROUP {}",
            a.max_storage_binding_bytes >> 20,
            a.max_buffer_bytes >> 20,
            a.max_workgroup_storage_bytes >> 10,
            if a.shader_f16 { "yes" } else { "no" },
            if a.subgroup { "yes" } else { "no" },
        );
    }
    Ok(())
}
