import ArgumentParser
import Foundation
import FuseKit

/// `fusekit convert`: any weights file FuseKit reads to a plain safetensors file.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert weights (a PyTorch .pth/.pt, a FuseKit checkpoint) to a safetensors file.",
        discussion: """
        Reads SOURCE as every --weights option and recipe 'weights:' field does: a PyTorch file written by \
        torch.save (zip or legacy format; read without running any of its code), a FuseKit checkpoint or a \
        safetensors file. A nested state dict is found by itself (under 'state_dict', 'model', 'MTAN', ...) and a \
        'module.' prefix is removed; SOURCE#PREFIX selects the tensors under a dotted prefix instead \
        (model.pth#MTAN.seg_decoder, best.safetensors#task). Writes DESTINATION atomically, as Float32 \
        tensors with the same names.
        """)

    @Argument(help: "The weights file, or FILE#PREFIX.")
    var source: String

    @Argument(help: "The safetensors file to write.")
    var destination: String

    func validate() throws {
        let sourceFile = WeightsReference(source).path
        if URL(fileURLWithPath: sourceFile).standardizedFileURL.path == URL(fileURLWithPath: destination).standardizedFileURL.path {
            throw ValidationError("SOURCE and DESTINATION are the same file (\(destination)): converting would overwrite the weights it reads")
        }
    }

    func run() throws {
        let loaded = try WeightsFile.convert(WeightsReference(source), to: URL(fileURLWithPath: destination))
        print("wrote \(loaded.summary) to \(destination)")
    }
}
