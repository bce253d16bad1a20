using Akka.Configuration;
using Orchestrator.Actors.Settings;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Tests;

/// <summary>orchestrator.host takes the machine's CPUs and memory from the node's inventory only where it gives none.</summary>
public sealed class HostSettingsTests
{
    private static readonly MachineInventory Machine = new(Cpus: 6, MemoryMiB: 12_288);

    [Fact]
    public void A_host_without_cpus_or_memory_in_its_config_offers_the_machines()
    {
        var host = HostSettings.Create(ConfigurationFactory.ParseString("driver = qemu"), Machine);

        Assert.Equal(6, host.Cpus);
        Assert.Equal(12_288, host.MemoryMiB);
    }

    [Fact]
    public void Host_labels_come_from_the_config_and_a_bad_one_is_named()
    {
        var host = HostSettings.Create(ConfigurationFactory.ParseString("labels { zone = a, ssd = \"true\", \"topology.rack\" = r1 }"), Machine);
        Assert.Equal(new Dictionary<string, string> { ["ssd"] = "true", ["topology.rack"] = "r1", ["zone"] = "a" }, host.Labels);
        Assert.Null(HostSettings.Create(ConfigurationFactory.ParseString("labels {}"), Machine).Labels);

        var bad = Assert.Throws<ConfigurationException>(() => HostSettings.Create(ConfigurationFactory.ParseString("labels { Zone = a }"), Machine));
        Assert.Contains("orchestrator.host.labels", bad.Message);
    }

    [Fact]
    public void Configured_cpus_and_memory_win_over_the_machine()
    {
        var host = HostSettings.Create(ConfigurationFactory.ParseString("cpus = 2, memory-mib = 1024"), Machine);

        Assert.Equal(2, host.Cpus);
        Assert.Equal(1024, host.MemoryMiB);
    }

    [Fact]
    public void A_cpuset_without_cpus_offers_its_own_count()
    {
        var host = HostSettings.Create(ConfigurationFactory.ParseString("cpuset = \"0-1\""), Machine);

        Assert.Equal(2, host.Cpus);
    }
}
