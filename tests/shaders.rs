//! Every WGSL file parses and validates with naga: no GPU needed, so a broken shader is caught
//! even on machines that never run the path that uses it.

#[test]
fn every_shader_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("shaders/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no shaders found in {}", dir.display());
    for path in &files {
        let src = std::fs::read_to_string(path).expect("readable shader");
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
        // unpack2x16float (f16 decoding) is the one capability the kernels need beyond core
        // WGSL; every Vulkan, Metal and DX12 device has it.
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32,
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
        // File name = kernel = entry point.
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        assert!(
            module.entry_points.iter().any(|ep| ep.name == stem),
            "{}: no entry point named `{stem}`",
            path.display()
        );
    }
    // Every file on disk is the one the crate embeds.
    for path in &files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let embedded = clp_gpu::kernels::SHADERS.iter().find(|(n, _)| *n == stem);
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            embedded.map(|e| e.1),
            Some(on_disk.as_str()),
            "{stem} not embedded"
        );
    }
}
