import FuseKit

/// Registers `mrfs` (the joint model, ``MRFS``) and `mrfs-fusion` (its fusion branch as a
/// TDFusion fusion net, ``MRFSFusion``). Their losses are FuseKit's terms: `intensity-max`,
/// `sobel-max` (signed, mean of the directions), `color` and `cross-entropy`, with the stage's
/// `targets` (visible gamma, infrared contrast) and the valid mask of `data.scales`; see
/// `recipes/mrfs-msrs.yaml`.
public enum MRFSPlugin {
    /// The small configuration of the gradient checks. Its widths and 40x40 inputs date from
    /// before the finite differences held kinks, when IGM-Att's max pools and the heads' ReLUs
    /// after BatchNorm made them flaky at [4, 8, 8, 8] and 32x32 (an argmax that flipped within the
    /// step changed a whole channel's attention); with kinks held both sizes pass for six direction
    /// seeds, and the larger one is kept as the more thorough check.
    static func small(_ c: inout MRFSConfiguration) {
        c.classes = 3
        c.embedDims = [8, 8, 16, 16]
        c.heads = [1, 2, 2, 2]
        c.depths = [1, 1, 1, 1]
        c.decoderEmbed = 4
        c.fusionEmbed = 2
    }

    public static func register(in registry: inout PluginRegistry) {
        registry.registerJoint("mrfs", summary: "MRFS (CVPR 2024): dual-stream MiT with IGM-Att and PC-Att, SegFormer and CNN fusion heads",
                               configuration: MRFSConfiguration.self,
                               gradcheck: GradcheckSettings(configure: small, inputSize: (40, 40), batch: 2,
                                                            prepareState: GradcheckPoint.awayFromNormalizationKinks)) { MRFS($0) }
        registry.registerFusion("mrfs-fusion", summary: "MRFS's fusion branch (dual-stream MiT with IGM-Att, CNN head) as a fusion net F, luma output",
                                configuration: MRFSConfiguration.self,
                                gradcheck: GradcheckSettings(configure: small, inputSize: (40, 40), batch: 1,
                                                                prepareState: GradcheckPoint.awayFromNormalizationKinks)) { MRFSFusion($0) }
    }
}
