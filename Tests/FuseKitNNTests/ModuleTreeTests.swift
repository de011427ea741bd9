import FuseKitNN
import FuseKitTensor
import Testing

/// A module tree declared with named children: names stated once, found by reflection, and
/// used by every call.
@Suite struct ModuleTreeTests {
    struct Inner: UnaryModule {
        let scale: ParameterSpec
        let conv: Child<Conv2d>
        init() {
            scale = ParameterSpec("scale", [1], .constant(2))
            conv = Child("conv", Conv2d(1, 1, kernelSize: 1, bias: false))
        }
        func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { conv(x, p) * p[scale] }
    }

    struct Pair: Layer {
        let left: Child<Inner>
        let right: Child<Inner>?
        let blocks: Child<ModuleList<Inner>>
        let dropout = Dropout(0.5)
        init(withRight: Bool) {
            left = Child("left_branch", Inner())
            right = withRight ? Child("r", Inner()) : nil
            blocks = Child("blocks", ModuleList([Inner(), Inner()]))
        }
        func callAsFunction(_ x: (Tensor, Tensor), _ p: Scope) -> Tensor {
            let l = blocks[1](left(x.0, p), p)
            return dropout(right.map { l + $0(x.1, p) } ?? l, p)
        }
    }

    @Test func childrenAndParametersAreFoundInDeclarationOrder() {
        let pair = Pair(withRight: true)
        #expect(pair.namedSpecs().map(\.name) == ["left_branch.scale", "left_branch.conv.weight", "r.scale", "r.conv.weight",
                                                  "blocks.0.scale", "blocks.0.conv.weight", "blocks.1.scale", "blocks.1.conv.weight"])
        #expect(Pair(withRight: false).namedSpecs().map(\.name).contains("r.scale") == false)
        #expect(pair.parameterCount == 8)
        #expect(pair.parametersWithoutDecay.isEmpty)
    }

    @Test func callsReadTheirOwnParameters() {
        let pair = Pair(withRight: true)
        var state = pair.initialState(seed: 1)
        state.parameters["left_branch.conv.weight"] = Tensor(shape: [1, 1, 1, 1], scalars: [3])
        state.parameters["blocks.1.conv.weight"] = Tensor(shape: [1, 1, 1, 1], scalars: [5])
        state.parameters["r.conv.weight"] = Tensor(shape: [1, 1, 1, 1], scalars: [7])
        let one = Tensor.ones([1, 1, 1, 1])
        // left: 1·3·2 = 6; blocks.1: 6·5·2 = 60; right: 1·7·2 = 14.
        #expect(pair((one, one), Scope(state)).item == 74)
    }

    @Test func aTraceRecordsEveryChildOutput() {
        let pair = Pair(withRight: true)
        let context = ForwardContext()
        context.trace = ModuleTrace()
        _ = pair((Tensor.ones([2, 1, 3, 4]), Tensor.ones([2, 1, 3, 4])), Scope(pair.initialState(seed: 1), context: context))
        let traced = context.trace!.outputs.map(\.prefix)
        #expect(traced == ["left_branch.conv.", "left_branch.", "blocks.1.conv.", "blocks.1.", "r.conv.", "r."])
        #expect(context.trace!.outputs.allSatisfy { $0.shapes == [[2, 1, 3, 4]] })
    }

    struct Unnamed: UnaryModule {
        let conv = Conv2d(1, 1, kernelSize: 1)
        func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor { x }
    }

    @Test func aModuleWithParametersMustBeNamed() async {
        await #expect(processExitsWith: .failure) {
            _ = Unnamed().namedSpecs()
        }
    }
}
