/// Why a PyTorch checkpoint (a `torch.save` file) could not be read. Every case names the file
/// (and, for pickle problems, the pickle and the byte offset of the opcode).
public enum TorchCheckpointError: Error, CustomStringConvertible, Equatable, Sendable {
    /// There is no file at the path.
    case fileNotFound(file: String)
    /// The file exists but cannot be opened or mapped.
    case unreadable(file: String, reason: String)
    /// The pickle names a Python callable or class that is not on the allowed list. Nothing
    /// is ever called: the list only says which names the reader knows how to interpret.
    case forbiddenGlobal(file: String, name: String, offset: Int)
    /// The pickle uses an opcode the reader refuses (object construction, extensions,
    /// out-of-band buffers, text-protocol opcodes).
    case forbiddenOpcode(file: String, opcode: String, offset: Int, reason: String)
    /// The pickle is malformed (truncated, stack underflow, bad memo reference, wrong argument
    /// types).
    case malformedPickle(file: String, offset: Int, reason: String)
    /// The zip archive or the legacy file's layout is broken (missing records, bad CRC, sizes
    /// that disagree).
    case corrupt(file: String, reason: String)
    /// A tensor's view does not fit its storage, or its shape is invalid.
    case invalidTensor(file: String, reason: String)
    /// A valid file of a kind this reader does not read (TorchScript archives, the tar format
    /// of PyTorch before 0.4, storage views of old legacy files).
    case unsupported(file: String, reason: String)

    /// The path of the file concerned.
    public var file: String {
        switch self {
        case .fileNotFound(let file), .unreadable(let file, _), .forbiddenGlobal(let file, _, _), .forbiddenOpcode(let file, _, _, _), .malformedPickle(let file, _, _),
             .corrupt(let file, _), .invalidTensor(let file, _), .unsupported(let file, _):
            return file
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let file):
            return "PyTorch checkpoint '\(file)' does not exist"
        case .unreadable(let file, let reason):
            return "PyTorch checkpoint '\(file)' cannot be read: \(reason)"
        case .forbiddenGlobal(let file, let name, let offset):
            return "PyTorch checkpoint '\(file)' refers to '\(name)' (pickle byte \(offset)); FuseKit reads only state dicts "
                + "(tensors in dicts, lists and tuples) and never runs code from a checkpoint. If this file holds a whole "
                + "model or other Python objects, save its state_dict() with PyTorch instead"
        case .forbiddenOpcode(let file, let opcode, let offset, let reason):
            return "PyTorch checkpoint '\(file)' uses the pickle opcode \(opcode) at byte \(offset), which FuseKit refuses: \(reason)"
        case .malformedPickle(let file, let offset, let reason):
            return "PyTorch checkpoint '\(file)' has a malformed pickle at byte \(offset): \(reason)"
        case .corrupt(let file, let reason):
            return "PyTorch checkpoint '\(file)' is corrupt: \(reason)"
        case .invalidTensor(let file, let reason):
            return "PyTorch checkpoint '\(file)' has an invalid tensor: \(reason)"
        case .unsupported(let file, let reason):
            return "PyTorch checkpoint '\(file)' cannot be read: \(reason)"
        }
    }
}
