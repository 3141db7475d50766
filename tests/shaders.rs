//! Every WGSL file parses and validates with naga, first as written and then with the crate's
//! `override` values applied (as pipeline creation applies them): no GPU needed, so a broken
//! shader or a bad workgroup/tile size is caught even on machines that never run the path that
//! uses it. Every failure is collected and reported together.

use clp_gpu::kernels::{Shader, COMMON_WGSL, SHADERS};
use clp_gpu::method::status::code;
use clp_gpu::DType;
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn validator() -> Validator {
    // unpack2x16float (f16 decoding) is the one capability the kernels need beyond core WGSL;
    // every Vulkan, Metal and DX12 device has it.
    Validator::new(
        ValidationFlags::all(),
        Capabilities::SHADER_FLOAT16_IN_FLOAT32,
    )
}

/// Parses, validates, applies `constants` and validates again; every problem as one line.
fn check(name: &str, src: &str, constants: &[(&str, f64)]) -> Vec<String> {
    let module = match naga::front::wgsl::parse_str(src) {
        Ok(m) => m,
        Err(e) => return vec![format!("{name}: {}", e.emit_to_string(src))],
    };
    let mut problems = Vec::new();
    // File name = kernel = entry point.
    if !module.entry_points.iter().any(|ep| ep.name == name) {
        problems.push(format!("{name}: no entry point named `{name}`"));
    }
    let info = match validator().validate(&module) {
        Ok(info) => info,
        Err(e) => {
            problems.push(format!("{name}: {}", e.emit_to_string(src)));
            return problems;
        }
    };
    let mut values = naga::back::PipelineConstants::default();
    for &(key, value) in constants {
        values.insert(key.to_string(), value);
    }
    let entry = Some((naga::ShaderStage::Compute, name));
    match naga::back::pipeline_constants::process_overrides(&module, &info, entry, &values) {
        Ok((resolved, _)) => problems.extend(check_limits(name, &resolved)),
        Err(e) => problems.push(format!("{name} with overrides {constants:?}: {e}")),
    }
    problems
}

/// WebGPU's default limits, which every adapter offers: a workgroup size that passes naga but
/// exceeds these would only fail at pipeline creation on some devices.
const MAX_INVOCATIONS: u32 = 256;
const MAX_WORKGROUP_STORAGE_BYTES: u32 = 16_384;

/// Checks the resolved entry point's workgroup size and workgroup memory against the limits.
fn check_limits(name: &str, module: &naga::Module) -> Vec<String> {
    let mut problems = Vec::new();
    for ep in &module.entry_points {
        let [x, y, z] = ep.workgroup_size;
        if x * y * z > MAX_INVOCATIONS {
            problems.push(format!(
                "{name}: workgroup {x} x {y} x {z} exceeds {MAX_INVOCATIONS} invocations"
            ));
        }
    }
    let bytes: u32 = module
        .global_variables
        .iter()
        .filter(|(_, v)| v.space == naga::AddressSpace::WorkGroup)
        .map(|(_, v)| module.types[v.ty].inner.size(module.to_ctx()))
        .sum();
    if bytes > MAX_WORKGROUP_STORAGE_BYTES {
        problems.push(format!(
            "{name}: {bytes} bytes of workgroup memory exceed {MAX_WORKGROUP_STORAGE_BYTES}"
        ));
    }
    problems
}

fn shader_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("shaders/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no shaders found in {}", dir.display());
    files
}

fn embedded(name: &str) -> Option<&'static Shader> {
    SHADERS.iter().find(|s| s.name == name)
}

#[test]
fn every_shader_validates_with_its_overrides() {
    let mut problems = Vec::new();
    let files = shader_files();
    for path in &files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        let src = std::fs::read_to_string(path).expect("readable shader");
        if name == "common" {
            if src != COMMON_WGSL {
                problems.push("common: the embedded source differs from the file".into());
            }
            continue;
        }
        // Every file on disk is the one the crate embeds, with its override values; what is
        // validated is the composed source pipelines are built from.
        let Some(shader) = embedded(name) else {
            problems.push(format!("{name}: not embedded in kernels::SHADERS"));
            continue;
        };
        if shader.wgsl != src {
            problems.push(format!("{name}: the embedded source differs from the file"));
        }
        problems.extend(check(name, &shader.source(), shader.constants));
    }
    if SHADERS.len() + 1 != files.len() {
        problems.push(format!(
            "{} shaders embedded (and common.wgsl), {} files",
            SHADERS.len(),
            files.len()
        ));
    }
    assert!(
        problems.is_empty(),
        "{} shader problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn a_bad_override_value_is_caught() {
    for shader in SHADERS {
        let (key, _) = shader.constants[0];
        let bad = [(key, 0.0)];
        assert!(
            !check(shader.name, &shader.source(), &bad).is_empty(),
            "{}: {key} = 0 was accepted",
            shader.name
        );
        let too_big = [(key, 4096.0)];
        assert!(
            !check(shader.name, &shader.source(), &too_big).is_empty(),
            "{}: {key} = 4096 was accepted",
            shader.name
        );
        let missing = check(shader.name, &shader.source(), &[]);
        assert!(
            !missing.is_empty(),
            "{}: validated without its override values",
            shader.name
        );
    }
}

#[test]
fn every_failure_is_reported() {
    let broken = "fn broken( {";
    let bad_types = "@compute @workgroup_size(1) fn bad() { let x: u32 = 1.5; }";
    let mut problems = check("broken", broken, &[]);
    problems.extend(check("bad", bad_types, &[]));
    assert_eq!(problems.len(), 2, "{problems:?}");
}

/// The `u32` value of every module-level `const` of `src`.
fn u32_consts(src: &str) -> std::collections::BTreeMap<String, u32> {
    let module = naga::front::wgsl::parse_str(src).expect("common.wgsl parses");
    let mut out = std::collections::BTreeMap::new();
    for (_, c) in module.constants.iter() {
        let expr = &module.global_expressions[c.init];
        if let (Some(name), naga::Expression::Literal(naga::Literal::U32(v))) = (&c.name, expr) {
            out.insert(name.clone(), *v);
        }
    }
    out
}

#[test]
fn the_wgsl_status_codes_and_dtypes_are_the_rust_ones() {
    let wgsl = u32_consts(COMMON_WGSL);
    let statuses: Vec<_> = wgsl.keys().filter(|k| k.starts_with("STATUS_")).collect();
    assert_eq!(statuses.len(), code::ALL.len(), "{statuses:?}");
    for (name, value) in code::ALL {
        assert_eq!(
            wgsl.get(&format!("STATUS_{name}")),
            Some(&value),
            "STATUS_{name}"
        );
    }
    for (name, dtype) in [
        ("F32", DType::F32),
        ("F16", DType::F16),
        ("BF16", DType::BF16),
    ] {
        assert_eq!(
            wgsl.get(&format!("DTYPE_{name}")),
            Some(&dtype.shader_code()),
            "DTYPE_{name}"
        );
    }
    // No kernel spells a status as a bare number: `code = 3u` would bypass the names.
    for shader in SHADERS {
        for line in shader
            .wgsl
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
        {
            let bare = line.contains("code = ") && line.trim_end().ends_with("u;");
            assert!(!bare, "{}: a bare status code: {line}", shader.name);
        }
    }
}
