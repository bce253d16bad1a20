namespace Orchestrator.Hypervisor.Tests;

public sealed class MachineInventoryTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Memory_is_MemTotal_in_whole_MiB()
    {
        var meminfo = Path.Combine(_dir.Path, "meminfo");
        File.WriteAllText(meminfo, "MemTotal:        8154284 kB\nMemFree:         1234567 kB\n");

        Assert.Equal(8154284 / 1024, MachineInventory.ReadMemoryMiB(meminfo));
    }

    [Fact]
    public void A_meminfo_without_MemTotal_is_taken_for_the_fallback()
    {
        var meminfo = Path.Combine(_dir.Path, "meminfo");
        File.WriteAllText(meminfo, "MemFree:         1234567 kB\n");

        Assert.Equal(MachineInventory.FallbackMemoryMiB, MachineInventory.ReadMemoryMiB(meminfo));
    }

    [Fact]
    public void This_machine_has_cpus_and_memory()
    {
        var machine = MachineInventory.Probe();

        Assert.Equal(Environment.ProcessorCount, machine.Cpus);
        Assert.True(machine.MemoryMiB > 0);
    }
}
