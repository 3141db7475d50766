//! Without a usable adapter, the error names the package to install (this test binary is its
//! own process, so setting the filter variable affects nothing else).

#[test]
fn missing_adapter_error_names_the_package() {
    std::env::set_var("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere");
    let err = match clp_gpu::Gpu::new() {
        Ok(_) => panic!("an adapter matched an impossible name"),
        Err(e) => e,
    };
    assert!(
        matches!(err, clp_gpu::Error::NoAdapter { .. }),
        "variant: {err:?}"
    );
    let err = err.to_string();
    assert!(err.contains("mesa-vulkan-drivers"), "message: {err}");
    assert!(err.contains("no-such-adapter-anywhere"), "message: {err}");
}
