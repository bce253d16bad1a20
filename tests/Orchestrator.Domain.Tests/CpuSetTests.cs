using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class CpuSetTests
{
    [Fact]
    public void Each_vcpu_gets_its_own_cpu_while_the_set_has_enough()
    {
        var pins = CpuSet.VcpuPins("2-4,7", 3);

        Assert.NotNull(pins);
        Assert.Equal([[2], [3], [4]], pins);
    }

    [Fact]
    public void Vcpus_share_the_whole_set_when_it_is_too_small()
    {
        var pins = CpuSet.VcpuPins("0-1", 3);

        Assert.NotNull(pins);
        Assert.All(pins, pin => Assert.Equal([0, 1], pin));
        Assert.Equal(3, pins.Count);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("3-1")]
    public void No_valid_cpuset_means_no_pinning(string? cpuset) => Assert.Null(CpuSet.VcpuPins(cpuset, 2));
}
