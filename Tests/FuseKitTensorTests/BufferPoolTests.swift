import FuseKitTensor
import Testing

/// Large buffers (mapped directly, huge-page backed) hold their values, are reused from the
/// cache and returned without corrupting neighbours.
@Suite struct BufferPoolTests {
    @Test func largeBuffersRoundTrip() {
        for count in [3_000_001, 2_097_152, 5_000_000] {
            let a = Tensor(shape: [count], scalars: (0..<count).map { Float($0 % 977) })
            let b = a * 2
            #expect(b[count - 1] == Float((count - 1) % 977) * 2)
            #expect(b[0] == 0 && b[count / 2] == Float((count / 2) % 977) * 2)
        }
        // A buffer of a size just freed comes back from the cache and is fully writable.
        let again = Tensor.zeros([5_000_000]) + 1
        #expect(again.sum().item == 5_000_000)
    }
}
