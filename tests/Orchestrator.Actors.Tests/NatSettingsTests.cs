using Akka.Configuration;
using Orchestrator.Actors.Settings;

namespace Orchestrator.Actors.Tests;

public sealed class NatSettingsTests
{
    private static Orchestrator.Hypervisor.Networking.HostNatSettings Nat(string hocon) =>
        OrchestratorSettings.ResolveNat(ConfigurationFactory.ParseString(hocon));

    [Fact]
    public void The_default_is_nat_out_of_the_default_routes_interface_with_the_default_denied_cidrs()
    {
        var nat = Nat("");
        Assert.True(nat.Enabled);
        Assert.Null(nat.Uplink);
        Assert.Null(nat.DenyCidrs);
        Assert.Equal("100.64.0.0/10", nat.TransitCidr);
    }

    [Fact]
    public void Uplink_deny_cidrs_and_off_are_read_and_bad_values_name_the_key()
    {
        var nat = Nat("network { uplink = eth1, deny-cidrs = [\"10.231.0.0/24\", \"192.0.2.7/32\"] }");
        Assert.Equal("eth1", nat.Uplink);
        Assert.Equal(["10.231.0.0/24", "192.0.2.7/32"], nat.DenyCidrs!);
        Assert.False(Nat("network.uplink = off").Enabled);
        Assert.Contains("orchestrator.network.deny-cidrs", Assert.Throws<ConfigurationException>(() => Nat("network.deny-cidrs = [\"10.0.0.0/40\"]")).Message);
        Assert.Contains("orchestrator.network.transit-cidr", Assert.Throws<ConfigurationException>(() => Nat("network.transit-cidr = \"10.0.0.0/30\"")).Message);
        Assert.Contains("orchestrator.network.uplink", Assert.Throws<ConfigurationException>(() => Nat("network.uplink = \"a-very-long-interface\"")).Message);
    }
}
