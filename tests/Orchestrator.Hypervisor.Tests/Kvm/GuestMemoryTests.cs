using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class GuestMemoryTests
{
    [Fact]
    public void Accesses_outside_guest_memory_are_refused_and_inside_ones_round_trip()
    {
        using var memory = new GuestMemory(1 << 20);
        memory.WriteUInt64(0xffff8, 0x1122334455667788);
        Assert.Equal(0x1122334455667788UL, memory.ReadUInt64(0xffff8));

        Assert.Throws<ArgumentOutOfRangeException>(() => memory.WriteUInt64(0xffff9, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.Read(1 << 20, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.Write(ulong.MaxValue, [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.Clear(0x80000, 0x80001));
        memory.Read(1 << 20, 0); // an empty access at the end is fine
    }

    [Fact]
    public void Memory_is_committed_only_where_it_is_touched()
    {
        using var memory = new GuestMemory(64 << 20);
        Assert.Equal(0UL, memory.ResidentBytes());
        memory.Write(32 << 20, new byte[4096 * 3]);
        // Three pages, or one huge page where transparent huge pages are "always" on.
        Assert.InRange(memory.ResidentBytes(), 3UL * 4096, 2UL << 20);
    }

    [Fact]
    public void Sizes_that_are_not_whole_pages_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new GuestMemory(1000));
    }
}
