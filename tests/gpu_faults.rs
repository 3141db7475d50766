//! The GPU side never panics: an adapter that cannot run the kernels, and a device that
//! refuses what the run allocates, end in an `Err` with the right variant and a one-line
//! message. The fault switch is [`Gpu::with_device_limits`]: the device is opened with lowered
//! limits while the planner keeps the adapter's own, so the run really allocates buffers the
//! device refuses. Needs an adapter (lavapipe in CI), like every GPU test.

use clp_gpu::backend::gpu::{Engine, Gpu, REQUIRED_STORAGE_BUFFERS};
use clp_gpu::method::{TopK, Weighting};
use clp_gpu::tensor::MatrixRef;
use clp_gpu::Error;

#[test]
fn too_few_storage_bindings_is_refused_before_the_device_opens() {
    let err = match Gpu::with_device_limits(|l| {
        l.max_storage_buffers_per_shader_stage = REQUIRED_STORAGE_BUFFERS - 1
    }) {
        Ok(_) => panic!("a device without enough storage bindings was accepted"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::GpuUnsupported { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("at most 4 storage buffers") && msg.contains("--backend cpu"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1, "{msg}");
}

#[test]
fn a_buffer_the_device_refuses_is_an_error_not_a_panic() {
    let gpu = Gpu::with_device_limits(|l| {
        l.max_buffer_size = 1 << 20;
        l.max_storage_buffer_binding_size = 1 << 20;
    })
    .expect("install mesa-vulkan-drivers: no adapter");
    let engine = Engine::new(gpu).expect("pipelines build within lowered buffer limits");
    // 4,096 overlap rows of 128 f32 = 2 MiB per tile buffer: over the device's 1 MiB.
    let (m, o, d) = (64, 4096, 128);
    let data: Vec<f32> = (0..(m + o) * d)
        .map(|i| ((i * 7919) % 101) as f32 - 50.0)
        .collect();
    let hm = MatrixRef::from_f32(&data[..m * d], m, d).unwrap();
    let ho = MatrixRef::from_f32(&data[m * d..], o, d).unwrap();
    for top_k in [TopK::All, TopK::K(8)] {
        let w = Weighting::Clp { top_k };
        let err = match engine.clp(&hm, &ho, &ho, &w) {
            Ok(_) => panic!("{top_k}: the device accepted buffers over its limit"),
            Err(e) => e,
        };
        let Error::GpuFault { kind, during, .. } = &err else {
            panic!("{top_k}: wrong variant: {err:?}");
        };
        assert_eq!(*kind, "validation error", "{err}");
        assert!(during.contains("allocating"), "{err}");
        let msg = err.to_string();
        assert_eq!(msg.lines().count(), 1, "{msg}");
        assert!(msg.contains("please report"), "{msg}");
    }
}
