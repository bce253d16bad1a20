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
    public void The_hosts_nat_forward_and_guard_rules_are_valid_nftables_and_keep_guests_off_the_host()
    {
        var rules = HostNetworking.HostRules("orchnat_test", "eth0", ["10.231.0.0/24", HostNatSettings.LinkLocal], HostNatSettings.DefaultTransit,
            [("tcp", 20000, "100.64.0.30"), ("udp", 20001, "100.64.0.30")]);
        Assert.Contains("type filter hook input priority -10; policy accept;\n    iifname \"oup*\" drop", rules);
        Assert.Contains("iifname \"oup*\" oifname != \"eth0\" drop", rules);
        Assert.Contains("iifname \"oup*\" ip daddr 10.231.0.0/24 drop", rules);
        Assert.Contains("iifname \"oup*\" ip daddr 169.254.0.0/16 drop", rules);
        Assert.Contains("iifname != \"oup*\" fib daddr type local tcp dport 20000 dnat to 100.64.0.30:20000", rules);
        Assert.Contains("oifname \"eth0\" ip saddr 100.64.0.0/10 masquerade", rules);
        NftAccepts(rules);
        var noUplink = HostNetworking.HostRules("orchnat_test", null, [], HostNatSettings.DefaultTransit, []);
        Assert.DoesNotContain("masquerade", noUplink);
        NftAccepts(noUplink);
    }

    [Fact]
    public void The_routers_nat_and_forward_rules_are_valid_nftables()
    {
        var rules = HostNetworking.RouterRules("our7", [("tcp", 20000, "10.0.0.5", 80), ("udp", 20001, "10.0.0.5", 53)]);
        Assert.Contains("iifname \"our7\" tcp dport 20000 dnat to 10.0.0.5:80", rules);
        Assert.Contains("iifname \"our7\" drop", rules);
        Assert.Contains("oifname \"our7\" masquerade", rules);
        NftAccepts(rules);
    }

    [Fact]
    public void Transit_links_the_uplink_and_the_default_denied_come_from_ids_and_the_hosts_own_tables()
    {
        Assert.Equal(("100.64.0.29", "100.64.0.30"), HostNatSettings.Default.TransitAddresses(7));
        Assert.Throws<HypervisorException>(() => new HostNatSettings(TransitCidr: "10.9.0.0/28").TransitAddresses(4));
        Assert.Equal("eth0", HostNetworking.DefaultRouteDevice("default via 192.0.2.1 dev eth0 proto dhcp metric 100\n"));
        Assert.Null(HostNetworking.DefaultRouteDevice(""));
        const string addresses = "1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 10.231.0.3/24 brd 10.231.0.255 scope global eth0\n";
        Assert.Equal(["10.231.0.0/24", "169.254.0.0/16"], HostNetworking.DefaultDenied("10.231.0.3", addresses));
        Assert.Equal(["169.254.0.0/16"], HostNetworking.DefaultDenied(null, addresses));
        Assert.Contains("deny-cidrs", new HostNatSettings(DenyCidrs: ["10.0.0.0/33"]).Problem());
        Assert.Null(HostNatSettings.Default.Problem());
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
