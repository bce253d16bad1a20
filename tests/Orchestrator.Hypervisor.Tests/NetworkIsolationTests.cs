// Real guests on real bridges: DHCP addresses, reachability inside a tenant's network, and isolation (another
// tenant's network with the same CIDR and addresses, spoofed addresses and MACs, a rogue DHCP server, the host's own address).
using System.Diagnostics;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text;
using Orchestrator.Domain;
using Orchestrator.Domain.Networks;
using Orchestrator.Hypervisor.Networking;
using Orchestrator.Hypervisor.Qemu;
using Xunit.Abstractions;

namespace Orchestrator.Hypervisor.Tests;

/// <summary>A test that plugs guests into bridges: needs QEMU, root, ip, nft and dnsmasq; skipped, saying which is missing.</summary>
public sealed class NetworkFactAttribute : FactAttribute
{
    public NetworkFactAttribute()
    {
        string[] tools = ["ip", "nft", "dnsmasq"];
        var missing = tools.Where(t => !new[] { "/usr/sbin", "/sbin", "/usr/bin", "/bin" }.Any(d => File.Exists(Path.Combine(d, t)))).ToList();
        if (!QemuFactAttribute.QemuInstalled)
        {
            Skip = "qemu-system-x86_64 is not on PATH (apt-get install qemu-system-x86)";
        }
        else if (Environment.UserName != "root")
        {
            Skip = "bridges, taps and namespaces need root";
        }
        else if (missing.Count > 0)
        {
            Skip = $"{string.Join(", ", missing)} not installed (scripts/prerequisites.sh --tests installs them)";
        }
    }
}

[Collection(QemuCollection.Name)]
public sealed class NetworkIsolationTests(QemuFixture fixture, ITestOutputHelper output)
{
    [NetworkFact]
    public async Task Guests_of_one_network_reach_each_other_and_nothing_of_another_tenant_a_spoofer_a_rogue_dhcp_server_or_the_host()
    {
        // VNIs from the top of the range, so a test never meets a real network's bridge.
        var vniA = 0xF00000 + Random.Shared.Next(0x7FFFF) * 2;
        var vniB = vniA + 1;
        var hostAddress = HostAddress();
        using var dir = new TempDir();
        var networking = new HostNetworking(Path.Combine(dir.Path, "net"));
        var driver = new QemuDriver(fixture.Options() with { RunDirectory = Path.Combine(dir.Path, "run"), Networking = networking });
        using var heartbeat = new Timer(_ => driver.Heartbeat(), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(500));
        var vms = new List<VmId>();
        try
        {
            var target = await BootAsync(driver, vms, "a-target", Nic(vniA, 4), script: null);
            await target.WaitForAsync<VmEvent.ConsoleLine>(l => l.Text == "orchestrator: eth0 10.0.0.4/24", "a-target's DHCP address");

            var clock = Stopwatch.StartNew();
            var peer = BootAsync(driver, vms, "a-peer", Nic(vniA, 2), $$"""
                #!/bin/sh
                probe() { if ping -c 3 -W 2 "$2" >/dev/null 2>&1; then echo "NETTEST $1 reached"; else echo "NETTEST $1 unreached"; fi; }
                probe peer 10.0.0.4
                ip -4 addr flush dev eth0; ip addr add 10.0.0.9/24 dev eth0
                probe spoofed-ip 10.0.0.4
                ip -4 addr flush dev eth0; ip addr add 10.0.0.2/24 dev eth0
                ip link set eth0 down; ip link set eth0 address 02:00:00:00:00:99; ip link set eth0 up
                probe spoofed-mac 10.0.0.4
                ip link set eth0 down; ip link set eth0 address {{Nic(vniA, 2).Mac}}; ip link set eth0 up
                printf 'interface eth0\nstart 10.0.0.200\nend 10.0.0.210\nopt router 10.0.0.99\nlease_file /tmp/rogue.leases\n' >/tmp/rogue.conf
                touch /tmp/rogue.leases; (udhcpd -f /tmp/rogue.conf >/dev/console 2>&1 &); sleep 1
                pidof udhcpd >/dev/null && echo "NETTEST rogue-dhcp started"
                """);
            var stranger = BootAsync(driver, vms, "b-stranger", Nic(vniB, 3), $$"""
                #!/bin/sh
                probe() { if ping -c 3 -W 2 "$2" >/dev/null 2>&1; then echo "NETTEST $1 reached"; else echo "NETTEST $1 unreached"; fi; }
                probe own-router 10.0.0.1
                probe other-tenant 10.0.0.4
                probe other-tenant-peer 10.0.0.2
                probe host {{hostAddress}}
                """);
            var a = await peer;
            var b = await stranger;

            await a.WaitForAsync<VmEvent.ConsoleLine>(l => l.Text.StartsWith("NETTEST peer", StringComparison.Ordinal), "a-peer's ping of a-target");
            output.WriteLine($"create to a guest answering ping: {clock.Elapsed.TotalSeconds:F1} s (TCG, two other guests booting beside it)");
            await a.WaitForBannerAsync("a-peer");
            await b.WaitForBannerAsync("b-stranger");

            // A guest that serves DHCP (a rogue, port security's second duty) answers nobody. The network's own server
            // (dnsmasq) would answer first anyway, so it is held (SIGSTOP) while a guest that boots after the rogue asks:
            // nothing answers it then; once the server runs again, the server's answer comes through (the hook works).
            await a.WaitForAsync<VmEvent.ConsoleLine>(l => l.Text == "NETTEST rogue-dhcp started", "a-peer's rogue DHCP server");
            var late = await BootAsync(driver, vms, "a-late", Nic(vniA, 5), """
                #!/bin/sh
                printf '#!/bin/sh\n[ "$1" = bound ] && echo "NETTEST dhcp-server $serverid $ip" >/dev/console\nexit 0\n' >/tmp/hook.sh; chmod +x /tmp/hook.sh
                echo "NETTEST asking soon"; sleep 5
                for i in 1 2 3; do udhcpc -i eth0 -n -q -t 3 -T 1 -s /tmp/hook.sh >/dev/null 2>&1; done
                echo "NETTEST asked while held"; sleep 3
                udhcpc -i eth0 -n -q -t 5 -T 1 -s /tmp/hook.sh >/dev/null 2>&1
                echo "NETTEST dhcp done"
                """);
            var server = DhcpServerOf(networking, vniA);
            await late.WaitForAsync<VmEvent.ConsoleLine>(l => l.Text == "NETTEST asking soon", "a-late about to ask");
            server.Kill(Signal.Stop);
            try
            {
                await late.WaitForAsync<VmEvent.ConsoleLine>(l => l.Text == "NETTEST asked while held", "a-late's asks while the server is held");
            }
            finally
            {
                server.Kill(Signal.Continue);
            }

            await late.WaitForAsync<VmEvent.ConsoleLine>(l => l.Text == "NETTEST dhcp done", "a-late's last ask");
            var lines = late.Events.OfType<VmEvent.ConsoleLine>().Select(l => l.Text).ToList();
            var held = lines.IndexOf("NETTEST asked while held");
            Assert.DoesNotContain(lines.Take(held), l => l.StartsWith("NETTEST dhcp-server ", StringComparison.Ordinal)); // the rogue reached nobody
            Assert.Equal(["NETTEST dhcp-server 10.0.0.1 10.0.0.5"], lines.Skip(held).Where(l => l.StartsWith("NETTEST dhcp-server ", StringComparison.Ordinal)));

            Assert.Equal("reached", Outcome(a, "peer"));
            Assert.Equal("unreached", Outcome(a, "spoofed-ip"));
            Assert.Equal("unreached", Outcome(a, "spoofed-mac"));
            Assert.Equal("reached", Outcome(b, "own-router"));
            Assert.Equal("unreached", Outcome(b, "other-tenant"));
            Assert.Equal("unreached", Outcome(b, "other-tenant-peer"));
            Assert.Equal("unreached", Outcome(b, "host"));
        }
        finally
        {
            foreach (var vm in await driver.DiscoverAsync(CancellationToken.None))
            {
                await driver.KillAsync(vm, CancellationToken.None);
            }

            foreach (var vm in vms)
            {
                driver.Cleanup(vm);
                await driver.UnpluggedAsync(vm);
            }

            await driver.StopGuardAsync(CancellationToken.None);
            await driver.DisposeAsync();
        }

        Assert.False(Directory.Exists($"/sys/class/net/{NetworkDeviceNames.Bridge(vniA)}"), "network A's bridge outlived its last VM");
        Assert.False(File.Exists($"/run/netns/{networking.RouterNamespace(vniB)}"), "network B's router namespace outlived its last VM");
    }

    private static NicAssignment Nic(int vni, int host) =>
        new(0, $"net-{vni:x}", vni, $"02:aa:00:{vni & 0xff:x2}:00:{host:x2}", $"10.0.0.{host}", 24, Gateway: true);

    private async Task<EventRecorder> BootAsync(QemuDriver driver, List<VmId> vms, string name, NicAssignment nic, string? script)
    {
        var id = VmId.New();
        lock (vms)
        {
            vms.Add(id);
        }

        var seed = script is null ? null : new GuestSeed(name, [], Encoding.UTF8.GetBytes(script.ReplaceLineEndings("\n") + "\n"));
        var handle = await driver.StartAsync(
            new VmLaunchSpec(id, name, 1, 128, fixture.Image, new Epoch(1), Seed: seed, Nics: [nic]), CancellationToken.None);
        var events = new EventRecorder(handle);
        await events.WaitForAsync<VmEvent.ConsoleLine>(l => l.Text.StartsWith("orchestrator: eth0", StringComparison.Ordinal), $"{name}'s DHCP line");
        output.WriteLine($"{name}: {events.Events.OfType<VmEvent.ConsoleLine>().First(l => l.Text.StartsWith("orchestrator: eth0", StringComparison.Ordinal)).Text}");
        return events;
    }

    /// <summary>The network's DHCP server (dnsmasq in its router namespace), by its pid file in the networking's state directory.</summary>
    private static DhcpServer DhcpServerOf(HostNetworking networking, int vni)
    {
        var pidFile = Path.Combine(networking.StateDirectory, vni.ToString("x", System.Globalization.CultureInfo.InvariantCulture), "dnsmasq.pid");
        return new DhcpServer(int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture));
    }

    private enum Signal
    {
        Continue = 18,
        Stop = 19,
    }

    private sealed record DhcpServer(int Pid)
    {
        public void Kill(Signal signal) => Assert.Equal(0, Kill(Pid, (int)signal));

        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        private static extern int Kill(int pid, int signal);
    }

    private static string Outcome(EventRecorder guest, string probe) =>
        guest.Events.OfType<VmEvent.ConsoleLine>().Select(l => l.Text).FirstOrDefault(t => t.StartsWith($"NETTEST {probe} ", StringComparison.Ordinal))
            ?[$"NETTEST {probe} ".Length..] ?? "never printed";

    /// <summary>This machine's own IPv4 address (the one a node's API and cluster ports listen on).</summary>
    private static string HostAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(i => i.OperationalStatus == OperationalStatus.Up && i.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)?.ToString() ?? "127.0.0.1";
}
