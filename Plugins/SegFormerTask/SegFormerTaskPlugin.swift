import FuseKit

/// Registers the segmentation task networks `segformer` (``SegFormerConfiguration``) and
/// `tiny-conv-seg` (``TinyConvSegmenterConfiguration``). There is no `input-size`: the trainer
/// resizes the fused images to the task size before the task net sees them, and SegFormer works
/// at any size of at least 32x32.
public enum SegFormerTaskPlugin {
    /// Adds `segformer` and `tiny-conv-seg` to `registry`.
    ///
    /// Their gradient checks differentiate the class logits, element by element, rather than the
    /// loss: the loss is one scalar whose float32 rounding, over a finite-difference step, is as
    /// large as its derivative along some random directions (the loss's cross-entropy and resize
    /// have their own checks).
    public static func register(in registry: inout PluginRegistry) {
        registry.registerTask("segformer", summary: "SegFormer (MiT-b0/b1 encoder, all-MLP decoder), TDFusion's segmentation net",
                              configuration: SegFormerConfiguration.self,
                              gradcheck: GradcheckSettings(configure: { $0.classes = 3 }, inputSize: (32, 32),
                                                           taskObjective: { net, x, p in (net as! SegFormer).logits(x, p) })) { SegFormer($0) }
        registry.registerTask("tiny-conv-seg", summary: "tiny conv segmentation net (3x3-16, 3x3-16, 1x1) for tests and benchmarks",
                              configuration: TinyConvSegmenterConfiguration.self,
                              gradcheck: GradcheckSettings(configure: { $0.classes = 3 }, inputSize: (12, 12),
                                                           taskObjective: { net, x, p in (net as! TinyConvSegmenter).logits(x, p) })) { TinyConvSegmenter($0) }
    }
}
