//! The `devices` subcommand: every adapter wgpu can use, with the limits that matter here.

use anyhow::Result;

pub fn run(json: bool) -> Result<()> {
    let adapters = crate::backend::gpu::list_adapters();
    if json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(());
    }
    if adapters.is_empty() {
        anyhow::bail!(crate::Error::NoAdapter {
            filter: String::new()
        });
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
