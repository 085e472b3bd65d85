//! Every WGSL kernel parses and validates with naga, the shader compiler wgpu uses; no GPU
//! needed.

use std::path::Path;

#[test]
fn every_kernel_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kernels");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(&source)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name} is not valid:\n{}", e.emit_to_string(&source)));
        assert!(module.entry_points.iter().any(|e| e.name == "main"), "{name} has no entry point main");
        checked.push(name);
    }
    // matmul.wgsl's f16-weight variant, as the device with `shader-f16` gets it.
    let f16 = quiver_gpu::kernels::matmul::source(quiver_gpu::Precision::F16);
    let module = naga::front::wgsl::parse_str(&f16)
        .unwrap_or_else(|e| panic!("matmul.wgsl with f16 weights does not parse:\n{}", e.emit_to_string(&f16)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::SHADER_FLOAT16)
        .validate(&module)
        .unwrap_or_else(|e| panic!("matmul.wgsl with f16 weights is not valid:\n{}", e.emit_to_string(&f16)));
    checked.sort();
    assert_eq!(
        checked,
        [
            "attention.wgsl",
            "dot_scan.wgsl",
            "hamming_scan.wgsl",
            "layer_norm.wgsl",
            "matmul.wgsl",
            "pooling.wgsl",
            "top_k.wgsl"
        ]
    );
}
