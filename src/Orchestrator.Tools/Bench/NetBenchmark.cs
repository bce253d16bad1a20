using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.Cli;
using Orchestrator.Domain;
using Orchestrator.Domain.Shares;
using Orchestrator.Hypervisor.Networking;

namespace Orchestrator.Tools.Bench;

/// <summary>Options of <c>orchestrator bench net</c>.</summary>
public sealed record NetBenchOptions(int WindowSeconds, int SettleSeconds, OutputFormat Output);

/// <summary>
/// `bench net`: one node whose network is configured at 3 MiB/s per direction, three demo guests on one tenant network
/// each sending TCP as fast as it may to a receiver in the network's router namespace (through the host's one "up" HTB
/// tree: the constrained link). net-a weighs 2, net-b 1, net-c 1 with a limit; then net-c's limit is raised on the
/// running VM. For each phase: what each VM is entitled to (the Domain's division, its guarantee: everyone is busy) next
/// to what the receiver got. The limit counts Ethernet frames; the receiver counts TCP payload, so the measured figure is
/// the payload rate scaled by full-size frames' headers (the guests' MTU 1450: 1464 bytes of frame per 1398 of payload).
/// </summary>
public static class NetBenchmark
{
    private const long MiB = 1024 * 1024;
    private const long HostBps = 3 * MiB;
    private const string Cidr = "10.231.7.0/24";
    private const string Router = "10.231.7.1";
    private const int FirstPort = 5001;

    /// <summary>Ethernet, IPv4 and TCP (with timestamps) headers of a full-size frame, per payload byte.</summary>
    private static readonly double FramePerPayload = (HostNetworking.GuestMtu + 14.0) / (HostNetworking.GuestMtu - 52.0);

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static readonly string[] Names = ["net-a", "net-b", "net-c"];

    public static Command Command()
    {
        var window = new Option<int>("--window") { Description = "Seconds measured per phase.", DefaultValueFactory = _ => 20 }
            .Within(2, 600, unit: "seconds");
        var settle = new Option<int>("--settle")
        {
            Description = "Seconds waited after each phase's change before measuring: for it to reach tc and for the senders' TCP to settle at their new rates.",
            DefaultValueFactory = _ => 15,
        }.Within(0, 600, unit: "seconds");
        var output = new Option<OutputFormat>("--output", "-o") { Description = "table or json.", DefaultValueFactory = _ => OutputFormat.Table };
        var command = new Command("net",
            "Boot three guests sending through one host's shaped network; print each VM's entitled and measured bandwidth for shares 2:1 with one VM limited, then with its limit raised live.")
        {
            window, settle, output,
        };
        command.SetAction((parse, ct) => RunAsync(new NetBenchOptions(parse.GetValue(window), parse.GetValue(settle), parse.GetValue(output)), ct));
        return command;
    }

    /// <summary>Each phase's resources per VM: a weighs 2, b and c 1, c limited to 512 KiB/s; then c's limit at 1 MiB/s.</summary>
    private static IReadOnlyList<(string Phase, Func<int, string?> Patch)> Phases() =>
    [
        ("shares 2:1:1, net-c limited", _ => null),
        ("net-c's limit raised live", i => i == 2 ? $$"""{"netBps":{{MiB}}}""" : null),
    ];

    private static string CreateBody(int i, string userData)
    {
        var body = new JsonObject
        {
            ["name"] = Names[i], ["vcpus"] = 1, ["memoryMiB"] = 128, ["image"] = "demo", ["restartPolicy"] = "never", ["userData"] = userData,
            ["netShares"] = i == 0 ? 200 : 100, ["nics"] = new JsonArray(new JsonObject { ["network"] = "bench" }),
        };
        if (i == 2)
        {
            body["netBps"] = MiB / 2;
        }

        return body.ToJsonString();
    }

    /// <summary>The guest sends zeros to its port on the router for as long as it runs, connecting again whenever it must (in the background: the boot goes on to its ready banner).</summary>
    private static byte[] UserData(int port) => System.Text.Encoding.UTF8.GetBytes(
        $"#!/bin/sh\n(while true; do dd if=/dev/zero bs=65536 count=1000000 2>/dev/null | nc {Router} {port}; sleep 1; done) >/dev/null 2>&1 &\n");

    public static async Task<int> RunAsync(NetBenchOptions options, CancellationToken ct)
    {
        var window = TimeSpan.FromSeconds(options.WindowSeconds);
        var root = Directory.CreateTempSubdirectory("ornet").FullName;
        LocalNode? node = null;
        var receivers = new List<Receiver>();
        try
        {
            node = await LocalNode.StartAsync(root, [
                "--set", $"orchestrator.host-id=bench-net-{Environment.ProcessId}",
                "--set", $"orchestrator.network.host-bps={HostBps}",
                "--set", "orchestrator.network.uplink=off",
            ], ct);
            Console.Error.WriteLine($"net: {Names.Length} guests sending to their network's router, host network {MiBs(HostBps)} each way, window {window.TotalSeconds:0} s");
            var network = await node.Http.PostAsync("v1/networks", BenchHttp.JsonContent($$"""{"name":"bench","cidr":"{{Cidr}}"}"""), ct);
            if (!network.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"network create: {(int)network.StatusCode} {await network.Content.ReadAsStringAsync(ct)}");
            }

            var vni = (int)JsonNode.Parse(await network.Content.ReadAsStringAsync(ct))!["vni"]!;
            var routerNamespace = new HostNetworking(Path.Combine(node.RunDir, "net")).RouterNamespace(vni);
            for (var i = 0; i < Names.Length; i++)
            {
                var create = await node.Http.PostAsync("v1/vms", BenchHttp.JsonContent(CreateBody(i, Convert.ToBase64String(UserData(FirstPort + i)))), ct);
                if (!create.IsSuccessStatusCode)
                {
                    throw new InvalidOperationException($"create {Names[i]}: {(int)create.StatusCode} {await create.Content.ReadAsStringAsync(ct)}");
                }
            }

            await BenchHttp.Until(async () => (await BenchHttp.GetArray(node, "v1/vms"))?.All(v => (string?)v!["state"] == "Ready") == true,
                TimeSpan.FromMinutes(6), "every guest Ready", ct, async () => string.Join("; ",
                    (await BenchHttp.GetArray(node, "v1/vms") ?? []).Select(v => $"{v!["name"]} {v["state"]} {v["reason"]}")));
            // The router namespace exists once the first NIC is plugged: the receivers listen there, one port per guest.
            receivers.AddRange(Enumerable.Range(0, Names.Length).Select(i => new Receiver(routerNamespace, FirstPort + i)));
            await BenchHttp.Until(() => Task.FromResult(receivers.All(r => r.Bytes > 0)), TimeSpan.FromSeconds(60), "every guest's bytes at its receiver", ct);
            var taps = new List<string>();
            foreach (var name in Names)
            {
                var id = (string)(await BenchHttp.GetObject(node, $"v1/vms/{name}"))!["id"]!;
                taps.Add(NetworkDeviceNames.Tap(new VmId(Guid.Parse(id)), 0));
            }

            var shaping = new HostNetworking(Path.Combine(node.RunDir, "net"));
            var load = new List<string> { LoadAverage() };

            var results = new List<VmThroughput>();
            foreach (var (phase, patch) in Phases())
            {
                var members = new List<NetShares.Member>();
                for (var i = 0; i < Names.Length; i++)
                {
                    if (patch(i) is { } body)
                    {
                        var patched = await node.Http.SendAsync(new HttpRequestMessage(HttpMethod.Patch, $"v1/vms/{Names[i]}/resources")
                        {
                            Content = BenchHttp.JsonContent(body),
                        }, ct);
                        if (!patched.IsSuccessStatusCode)
                        {
                            throw new InvalidOperationException($"set {Names[i]}: {(int)patched.StatusCode} {await patched.Content.ReadAsStringAsync(ct)}");
                        }
                    }

                    var resources = (await BenchHttp.GetObject(node, $"v1/vms/{Names[i]}"))!["resources"]!;
                    members.Add(new NetShares.Member(new VmId(Guid.NewGuid()), (int?)resources["netShares"] ?? NetLimits.DefaultShares, (long?)resources["netBps"]));
                }

                // What the host agent divides: the same function, on what the ledger now holds. Everyone sends: each gets its guarantee.
                var entitled = NetShares.Divide(new HostNetCapacity(HostBps), members);
                await Task.Delay(TimeSpan.FromSeconds(options.SettleSeconds), ct);
                var from = receivers.Select(r => (r.Bytes, Stopwatch.GetTimestamp())).ToList();
                var classes = new List<int?>();
                foreach (var tap in taps)
                {
                    classes.Add(await ClassOfAsync(tap, ct));
                }

                var busy = await TraceAsync(receivers, shaping.ShapingDevices.Up, classes, window, ct);
                for (var i = 0; i < Names.Length; i++)
                {
                    var payload = (receivers[i].Bytes - from[i].Bytes) / Stopwatch.GetElapsedTime(from[i].Item2).TotalSeconds;
                    var measured = payload * FramePerPayload;
                    var expected = entitled[members[i].VmId].GuaranteedBps;
                    results.Add(new VmThroughput(phase, Names[i], members[i].Shares, members[i].LimitBps, expected, Math.Round(payload),
                        Math.Round(measured), Math.Round((measured - expected) / expected, 4), Math.Round(busy[i], 2)));
                }

                Console.Error.WriteLine($"  {phase}: measured {string.Join(" / ", results.Where(r => r.Phase == phase).Select(r => MiBs(r.MeasuredBps)))}");
            }

            foreach (var name in Names)
            {
                await node.Http.DeleteAsync($"v1/vms/{name}", ct);
            }

            await BenchHttp.Until(async () => (await BenchHttp.GetArray(node, "v1/vms"))?.Count == 0, TimeSpan.FromSeconds(60),
                "every guest deleted", ct);
            // The host lets go of the network (its router, dnsmasq, taps, IFBs) after the VMs are gone from the list: give
            // it time before the node stops, and say what it left if it did not.
            var (up, down) = shaping.ShapingDevices;
            var left = () => new[] { $"/run/netns/{routerNamespace}", $"/sys/class/net/{up}", $"/sys/class/net/{down}" }.Where(Path.Exists).ToList();
            for (var waited = 0; waited < 30 && left().Count > 0; waited++)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
            }

            if (left() is { Count: > 0 } leftovers)
            {
                Console.Error.WriteLine($"warning: the node still holds {string.Join(", ", leftovers)} 30 s after its last VM went");
            }
            load.Add(LoadAverage());
            Print(options, window, results, load);
            return 0;
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or HttpRequestException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 1;
        }
        finally
        {
            foreach (var receiver in receivers)
            {
                await receiver.DisposeAsync();
            }

            if (node is not null)
            {
                await node.DisposeAsync();
            }

            BenchHttp.RemoveDataDir(root);
        }
    }

    /// <summary>
    /// Waits out the window, saying on stderr what each receiver got in each second of it (how steady the split was);
    /// returns for each VM the fraction of those seconds its class in the "up" tree had packets queued: HTB divides by
    /// shares only what is queued, so a VM whose class ran empty was held back by its own sender (a TCG guest short of
    /// CPU), not by the shaper, and what it left went to the others.
    /// </summary>
    private static async Task<double[]> TraceAsync(List<Receiver> receivers, string up, List<int?> classes, TimeSpan window, CancellationToken ct)
    {
        var busy = new int[receivers.Count];
        var samples = 0;
        var clock = Stopwatch.StartNew();
        var last = receivers.Select(r => r.Bytes).ToList();
        var lastAt = TimeSpan.Zero;
        while (clock.Elapsed < window)
        {
            await Task.Delay(TimeSpan.FromSeconds(1) < window - clock.Elapsed ? TimeSpan.FromSeconds(1) : window - clock.Elapsed, ct);
            var now = receivers.Select(r => r.Bytes).ToList();
            var at = clock.Elapsed;
            var seconds = (at - lastAt).TotalSeconds;
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    {at.TotalSeconds,5:0.0} s: ") +
                string.Join("  ", now.Select((b, i) => $"{Names[i]} {MiBs((b - last[i]) * FramePerPayload / seconds)}")));
            (last, lastAt) = (now, at);
            var backlogs = Backlogs(await CaptureAsync(ct, "tc", "-s", "class", "show", "dev", up));
            samples++;
            for (var i = 0; i < classes.Count; i++)
            {
                busy[i] += classes[i] is { } minor && backlogs.GetValueOrDefault(minor) > 0 ? 1 : 0;
            }
        }

        return [.. busy.Select(b => samples == 0 ? 0 : (double)b / samples)];
    }

    /// <summary>The HTB class (minor) the tap's bandwidth table files its guest's packets in; null when it has none.</summary>
    private static async Task<int?> ClassOfAsync(string tap, CancellationToken ct)
    {
        var table = (await CaptureAsync(ct, "nft", "list", "tables", "netdev"))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' ')).FirstOrDefault(words => words is ["table", "netdev", _] && words[2].EndsWith("_" + tap, StringComparison.Ordinal))?[2];
        var rules = table is null ? "" : await CaptureAsync(ct, "nft", "list", "table", "netdev", table);
        var match = System.Text.RegularExpressions.Regex.Match(rules, @"priority set 1:([0-9a-f]+)");
        return match.Success ? int.Parse(match.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture) : null;
    }

    /// <summary>Packets queued in each leaf class (by minor) of <c>tc -s class show</c>.</summary>
    private static Dictionary<int, long> Backlogs(string classes) =>
        System.Text.RegularExpressions.Regex.Matches(classes, @"class htb 1:(?<minor>[0-9a-f]+) parent 1:1 [^\n]*\n\s*Sent [^\n]*\n\s*backlog \S+ (?<packets>\d+)p")
            .ToDictionary(m => int.Parse(m.Groups["minor"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                m => long.Parse(m.Groups["packets"].Value, CultureInfo.InvariantCulture));

    private static async Task<string> CaptureAsync(CancellationToken ct, string file, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = await process.StandardOutput.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        return output;
    }

    /// <summary>The machine's 1-minute load average: the guests are TCG processes competing with everything else on it.</summary>
    private static string LoadAverage() => File.ReadAllText("/proc/loadavg").Split(' ')[0];

    private static void Print(NetBenchOptions options, TimeSpan window, List<VmThroughput> results, List<string> load)
    {
        var maxError = results.Select(r => Math.Abs(r.RelativeError)).DefaultIfEmpty(0).Max();
        if (options.Output == OutputFormat.Json)
        {
            var json = new JsonObject
            {
                ["host_bps"] = HostBps,
                ["window_s"] = window.TotalSeconds,
                ["settle_s"] = options.SettleSeconds,
                ["load_average"] = new JsonArray([.. load.Select(l => JsonValue.Create(double.Parse(l, CultureInfo.InvariantCulture)))]),
                ["max_relative_error"] = Math.Round(maxError, 4),
                ["vms"] = JsonSerializer.SerializeToNode(results, Json),
            };
            Console.WriteLine(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return;
        }

        Console.WriteLine($"net: {Names.Length} guests sending TCP to their router through one host's shaped network ({MiBs(HostBps)} each way), measured by the receiver over {window.TotalSeconds:0} s (payload x {FramePerPayload:0.000}: frames)");
        Console.WriteLine($"settled {options.SettleSeconds} s after each change; load average {string.Join(" → ", load)} (start → end)");
        Console.WriteLine($"{"PHASE",-28} {"VM",-6} {"SHARES",6} {"LIMIT",12} {"ENTITLED",12} {"PAYLOAD",12} {"MEASURED",12} {"ERROR",7} {"BUSY",5}");
        foreach (var r in results)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Phase,-28} {r.Vm,-6} {r.Shares,6} {(r.LimitBps is { } l ? MiBs(l) : "-"),12} {MiBs(r.EntitledBps),12} {MiBs(r.PayloadBps),12} " +
                $"{MiBs(r.MeasuredBps),12} {(r.RelativeError * 100).ToString("+0.0;-0.0;0.0", CultureInfo.InvariantCulture) + "%",7} {r.Busy * 100,4:0}%"));
        }

        Console.WriteLine("BUSY: the share of the window's seconds the VM's class had packets queued; below 100 % its guest did not keep up");
        Console.WriteLine("(a TCG guest short of CPU), what it left went to the others, and its error is its sender's, not the shaper's.");

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"largest relative error: {maxError * 100:0.0}%"));
    }

    private static string MiBs(double bps) => (bps / MiB).ToString("0.00", CultureInfo.InvariantCulture) + " MiB/s";

    /// <summary>
    /// A TCP receiver in the router's namespace (busybox nc, listening again after each connection), counting what arrives.
    /// Its standard input stays open: busybox nc stops reading the socket once its input ends.
    /// </summary>
    private sealed class Receiver : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private Process? _process;
        private long _bytes;

        public Receiver(string ns, int port) => _loop = Task.Run(() => LoopAsync(ns, port));

        public long Bytes => Interlocked.Read(ref _bytes);

        private async Task LoopAsync(string ns, int port)
        {
            var buffer = new byte[65536];
            while (!_stop.IsCancellationRequested)
            {
                using var process = Process.Start(new ProcessStartInfo("ip",
                    ["netns", "exec", ns, "busybox", "nc", "-l", "-p", port.ToString(CultureInfo.InvariantCulture)])
                {
                    RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
                })!;
                _process = process;
                var stream = process.StandardOutput.BaseStream;
                try
                {
                    int read;
                    while ((read = await stream.ReadAsync(buffer, _stop.Token)) > 0)
                    {
                        Interlocked.Add(ref _bytes, read);
                    }
                }
                catch (OperationCanceledException)
                {
                    // stopping
                }

                if (!process.HasExited)
                {
                    process.Kill();
                }

                await process.WaitForExitAsync(CancellationToken.None);
                await Task.Delay(100, CancellationToken.None); // not a busy loop where nc cannot start
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            try
            {
                if (_process is { HasExited: false } process)
                {
                    process.Kill();
                }
            }
            catch (InvalidOperationException)
            {
                // gone meanwhile
            }

            await _loop;
            _stop.Dispose();
        }
    }
}

/// <summary>One VM in one phase: the bandwidth it is entitled to, and what its receiver got (payload, and as frames), in bytes per second.</summary>
/// <param name="Busy">the share of the window's seconds its class had packets queued (1: the shaper, not its guest, set its rate throughout).</param>
public sealed record VmThroughput(string Phase, string Vm, int Shares, long? LimitBps, long EntitledBps, double PayloadBps, double MeasuredBps,
    double RelativeError, double Busy);
