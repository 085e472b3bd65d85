//! Every WGSL kernel parses and validates with naga, the shader compiler wgpu uses; no GPU
//! needed. The sources are the kernels' complete ones (shared parts prepended, the f16
//! variant too), and every `.wgsl` file in `src/kernels` is part of one.

use std::path::Path;

#[test]
fn every_kernel_validates() {
    let sources = quiver_gpu::kernels::sources();
    for (name, source) in &sources {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(source)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::SHADER_FLOAT16)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name} is not valid:\n{}", e.emit_to_string(source)));
        assert!(module.entry_points.iter().any(|e| e.name == "main"), "{name} has no entry point main");
    }
    let names: Vec<&str> = sources.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["attention", "layer_norm", "matmul", "matmul with f16 weights", "pooling", "scan", "top_k"]);
}

#[test]
fn every_wgsl_file_is_part_of_a_kernel() {
    let sources = quiver_gpu::kernels::sources();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kernels");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(sources.iter().any(|(_, source)| source.contains(&text)), "{} is in no kernel", path.display());
        files += 1;
    }
    assert_eq!(files, 7, "attention, layer_norm, matmul, pooling, scan, top_k and workgroup_sum");
}
