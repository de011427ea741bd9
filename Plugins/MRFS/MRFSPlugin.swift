import FuseKit

/// Registers `mrfs` (the joint model, ``MRFS``) and `mrfs-fusion` (its fusion branch as a
/// TDFusion fusion net, ``MRFSFusion``). Their losses are FuseKit's terms: `intensity-max`,
/// `sobel-max` (signed, mean of the directions), `color` and `cross-entropy`, with the stage's
/// `targets` (visible gamma, infrared contrast) and the valid mask of `data.scales`; see
/// `recipes/mrfs-msrs.yaml`.
public enum MRFSPlugin {
    /// The small configuration of the gradient checks (32x32 is about the smallest input).
    static func small(_ c: inout MRFSConfiguration) {
        c.classes = 3
        c.embedDims = [4, 8, 8, 8]
        c.heads = [1, 2, 2, 2]
        c.depths = [1, 1, 1, 1]
        c.decoderEmbed = 4
        c.fusionEmbed = 2
    }

    public static func register(in registry: inout PluginRegistry) {
        registry.registerJoint("mrfs", summary: "MRFS (CVPR 2024): dual-stream MiT with IGM-Att and PC-Att, SegFormer and CNN fusion heads",
                               configuration: MRFSConfiguration.self,
                               gradcheck: GradcheckSettings(configure: small, inputSize: (32, 32), batch: 2)) { MRFS($0) }
        registry.registerFusion("mrfs-fusion", summary: "MRFS's fusion branch (dual-stream MiT with IGM-Att, CNN head) as a fusion net F, luma output",
                                configuration: MRFSConfiguration.self,
                                gradcheck: GradcheckSettings(configure: small, inputSize: (32, 32), batch: 2)) { MRFSFusion($0) }
    }
}
