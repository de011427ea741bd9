import FuseKit

/// Registers `mrfs` (the joint model, ``MRFS``) and `mrfs-fusion` (its fusion branch as a
/// TDFusion fusion net, ``MRFSFusion``). Their losses are FuseKit's terms: `intensity-max`,
/// `sobel-max` (signed, mean of the directions), `color` and `cross-entropy`, with the stage's
/// `targets` (visible gamma, infrared contrast) and the valid mask of `data.scales`; see
/// `recipes/mrfs-msrs.yaml`.
public enum MRFSPlugin {
    /// The small configuration of the gradient checks. IGM-Att's spatial and channel max pools
    /// and the heads' ReLUs after BatchNorm make finite differences of whole small networks
    /// flaky (an argmax that flips within the step changes a whole channel's attention); at
    /// these widths and 40x40 inputs the checks pass for every direction seed tried (mrfs 6 of 6,
    /// mrfs-fusion, checked element by element, 5 of 6), while at [4, 8, 8, 8] and 32x32 most
    /// fail by 2-5%. The blocks' own checks (Tests/MRFSTests) use inputs with separated maxima.
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
