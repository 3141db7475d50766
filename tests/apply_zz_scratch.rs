
mod apply_common;
use apply_common::*;
use clp_gpu::tensor::DType;
#[test]
fn scratch_build() {
    let d = std::path::Path::new("/tmp/m1");
    build_model(&d.join("src"), Arch::Llama, Lang::English, 420, 13, 32, DType::BF16, 2, 1);
    build_model(&d.join("hlp"), Arch::Gpt2, Lang::German, 380, 7, 24, DType::F16, 1, 2);
}
