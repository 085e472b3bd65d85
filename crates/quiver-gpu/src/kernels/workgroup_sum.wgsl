// The sum of one value per invocation over a workgroup of THREADS, for the kernels that
// reduce a row in one workgroup: their Rust prepends this file to their source.

const THREADS: u32 = 64u;

var<workgroup> partial: array<f32, 64>;

fn workgroup_sum(value: f32, t: u32) -> f32 {
    partial[t] = value;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride >>= 1u) {
        if (t < stride) {
            partial[t] += partial[t + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}
