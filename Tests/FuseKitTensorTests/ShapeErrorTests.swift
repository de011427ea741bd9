import FuseKitTensor
import Testing

/// Bad shapes and axes stop with a message naming the shapes (checked in a child process).
@Suite struct ShapeErrorTests {
    static func stderr(of result: ExitTest.Result?) -> String {
        String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
    }

    @Test func broadcastMismatchNamesBothShapes() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]) + Tensor.zeros([4])
        }
        #expect(Self.stderr(of: result).contains("add: shapes [2, 3] and [4] are not broadcast-compatible"))
    }

    @Test func invalidAxisNamesTheShape() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).sum(axis: 2)
        }
        #expect(Self.stderr(of: result).contains("sum: axis 2 is out of range for a tensor of shape [2, 3] (rank 2)"))
    }

    @Test func matmulMismatchNamesBothShapes() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.matmul(Tensor.zeros([2, 3]), Tensor.zeros([4, 5]))
        }
        #expect(Self.stderr(of: result).contains("matmul: inner dimensions differ: [2, 3] x [4, 5] (3 vs 4)"))
    }

    @Test func convolutionChannelMismatch() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.conv2d(Tensor.zeros([1, 3, 8, 8]), Tensor.zeros([4, 2, 3, 3]))
        }
        #expect(Self.stderr(of: result).contains("weight [4, 2, 3, 3] expects 2 input channels with 1 groups, input [1, 3, 8, 8] has 3"))
    }

    @Test func reshapeMismatch() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).reshaped([4, 2])
        }
        #expect(Self.stderr(of: result).contains("reshape: cannot reshape [2, 3] (6 elements) to [4, 2]"))
    }

    @Test func messagesAreAlsoAvailableWithoutStopping() {
        #expect(Shape.broadcast([2, 3], [3], op: "add") == .success([2, 3]))
        #expect(Shape.broadcast([5, 1], [1, 4], op: "add") == .success([5, 4]))
        guard case .failure(let error) = Shape.normalizeAxis(-3, rank: 2, shape: [4, 5], op: "softmax") else {
            Issue.record("axis -3 of a rank-2 tensor must be rejected")
            return
        }
        #expect(error.message == "softmax: axis -3 is out of range for a tensor of shape [4, 5] (rank 2)")
    }
}
