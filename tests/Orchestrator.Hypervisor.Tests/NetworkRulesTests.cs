using System.Diagnostics;
using Orchestrator.Domain.Networks;
using Orchestrator.Hypervisor.Networking;

namespace Orchestrator.Hypervisor.Tests;

/// <summary>The nftables rules and fdb parsing the host's networking writes and reads, checked by nft itself.</summary>
public class NetworkRulesTests
{
    private static readonly NicAssignment Nic = new(0, "net1", 7, "02:00:00:00:00:05", "10.0.0.5", 24, true,
    [
        new InboundRule(SecurityRule.Tcp, 8080, 8080, "10.0.0.1/32"),
        new InboundRule(SecurityRule.Udp, 5000, 5010, "10.0.1.0/24"),
        new InboundRule(SecurityRule.Icmp, 0, 0, "0.0.0.0/0"),
        new InboundRule(SecurityRule.Any, 0, 0, "10.0.0.9/32"),
    ]);

    [Fact]
    public void The_port_security_and_security_group_rules_are_valid_nftables()
    {
        var rules = HostNetworking.PortSecurityRules("otptest0", Nic);
        Assert.Contains("ip saddr 10.0.0.1/32 tcp dport 8080 accept", rules);
        Assert.Contains("ip saddr 10.0.1.0/24 udp dport 5000-5010 accept", rules);
        Assert.Contains("ip saddr != 10.0.0.1 ip saddr 10.0.0.0/24 accept", rules);
        NftAccepts(rules);
    }

    [Fact]
    public void The_vxlan_ports_rules_are_valid_nftables_and_keep_the_router_local()
    {
        var rules = HostNetworking.RouterStaysLocalRules("ovx7", "10.0.0.1");
        Assert.Contains("arp daddr ip 10.0.0.1 drop", rules);
        Assert.Contains("udp dport { 67, 68 } drop", rules);
        NftAccepts(rules);
    }

    [Fact]
    public void The_peers_are_the_destinations_of_the_all_zero_entries()
    {
        const string fdb = """
            00:00:00:00:00:00 dst 10.219.73.2 self permanent
            00:00:00:00:00:00 dst 10.219.73.3 self permanent
            02:00:00:00:00:05 dst 10.219.73.2 self
            5e:11:22:33:44:55 master obr7 permanent
            """;
        Assert.Equal(["10.219.73.2", "10.219.73.3"], HostNetworking.ParsePeers(fdb).Order());
        Assert.Empty(HostNetworking.ParsePeers(""));
    }

    /// <summary>nft -c: parsed and checked against the kernel, nothing applied.</summary>
    private static void NftAccepts(string rules)
    {
        using var nft = Process.Start(new ProcessStartInfo("nft", ["-c", "-f", "-"])
        {
            RedirectStandardInput = true,
            RedirectStandardError = true,
        })!;
        nft.StandardInput.Write(rules);
        nft.StandardInput.Close();
        var error = nft.StandardError.ReadToEnd();
        nft.WaitForExit();
        Assert.True(nft.ExitCode == 0, $"nft refused the rules: {error}\n{rules}");
    }
}
