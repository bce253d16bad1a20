using System.Net;
using Orchestrator.Actors.Webhooks;

namespace Orchestrator.Actors.Tests;

/// <summary>
/// Webhook targets: only public addresses, whatever form they are written in. An IPv6 address that embeds an IPv4
/// one leads where the IPv4 one does; the rest of the IANA special-purpose registries is refused.
/// </summary>
public sealed class PublicAddressesTests
{
    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("1.1.1.1")]
    [InlineData("2606:4700:4700::1111")]
    [InlineData("2a00:1450:4001:81c::200e")]
    [InlineData("::ffff:8.8.8.8")] // mapped
    [InlineData("64:ff9b::808:808")] // NAT64 to 8.8.8.8
    [InlineData("2002:808:808::1")] // 6to4 through 8.8.8.8
    [InlineData("2620:4f:8000::1")] // AS112 direct delegation: globally reachable
    public void Public_addresses_are_public(string text) =>
        Assert.True(PublicAddresses.IsPublic(IPAddress.Parse(text)), text);

    [Theory]
    // IPv4: the special-purpose registry.
    [InlineData("127.0.0.1")]
    [InlineData("10.1.2.3")]
    [InlineData("172.16.0.1")]
    [InlineData("172.31.255.255")]
    [InlineData("192.168.1.1")]
    [InlineData("169.254.169.254")]
    [InlineData("100.64.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("192.0.0.8")]
    [InlineData("192.0.2.1")]
    [InlineData("198.18.0.1")]
    [InlineData("198.19.255.1")]
    [InlineData("198.51.100.1")]
    [InlineData("203.0.113.1")]
    [InlineData("192.88.99.1")]
    [InlineData("224.0.0.1")]
    [InlineData("240.0.0.1")]
    [InlineData("255.255.255.255")]
    // IPv6 forms that embed a private IPv4 address.
    [InlineData("::ffff:127.0.0.1")] // IPv4-mapped
    [InlineData("::ffff:169.254.169.254")]
    [InlineData("::127.0.0.1")] // IPv4-compatible
    [InlineData("::10.0.0.1")]
    [InlineData("::ffff:0:10.0.0.1")] // IPv4-translated
    [InlineData("64:ff9b::7f00:1")] // NAT64 to 127.0.0.1
    [InlineData("64:ff9b::a9fe:a9fe")] // NAT64 to 169.254.169.254
    [InlineData("64:ff9b::192.168.0.1")]
    [InlineData("2002:7f00:1::1")] // 6to4 through 127.0.0.1
    [InlineData("2002:c0a8:101::1")] // 6to4 through 192.168.1.1
    // IPv6: the rest of the special-purpose registry.
    [InlineData("::")]
    [InlineData("::1")]
    [InlineData("64:ff9b:1::1")] // local-use NAT64
    [InlineData("100::1")] // discard-only
    [InlineData("2001::1")] // Teredo
    [InlineData("2001:0:4136:e378:8000:63bf:3fff:fdd2")]
    [InlineData("2001:2::1")] // benchmarking
    [InlineData("2001:10::1")] // ORCHID
    [InlineData("2001:20::1")] // ORCHIDv2
    [InlineData("2001:db8::1")] // documentation
    [InlineData("3fff::1")] // documentation
    [InlineData("3fff:fff:ffff::1")]
    [InlineData("5f00::1")] // SRv6 SIDs
    [InlineData("fc00::1")]
    [InlineData("fd12:3456::1")]
    [InlineData("fe80::1")]
    [InlineData("fec0::1")]
    [InlineData("ff02::1")]
    public void Special_purpose_addresses_are_not_public(string text) =>
        Assert.False(PublicAddresses.IsPublic(IPAddress.Parse(text)), text);
}
