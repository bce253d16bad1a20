using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.Cli;
using Orchestrator.Domain;
using Orchestrator.Domain.Shares;

namespace Orchestrator.Tools.Bench;

/// <summary>Options of <c>orchestrator bench io</c>.</summary>
public sealed record IoBenchOptions(int Vms, int WindowSeconds, OutputFormat Output);

/// <summary>
/// `bench io`: one node whose host disk is configured at 6 MiB/s per guest, N demo guests writing to their disks as fast as
/// their throttle lets them (oflag=direct), and for each setting (shares 2:1:…:1 with no limits, so the host's capacity is
/// divided; then a bandwidth limit on each, which fit) the bandwidth each VM is entitled to (the Domain's division) next to
/// what its guest measured writing.
/// </summary>
public static class IoBenchmark
{
    private const long MiB = 1024 * 1024;
    private const long BpsPerGuest = 6 * MiB;

    /// <summary>Time for a change to reach QEMU and for the throttle's burst allowance to drain before measuring.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(5);

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static Command Command()
    {
        var vms = new Option<int>("--vms") { Description = "Guests writing at once on the one host.", DefaultValueFactory = _ => 2 }.Within(1, 8);
        var window = new Option<int>("--window") { Description = "Seconds measured per setting.", DefaultValueFactory = _ => 10 }
            .Within(2, 600, unit: "seconds");
        var output = new Option<OutputFormat>("--output", "-o") { Description = "table or json.", DefaultValueFactory = _ => OutputFormat.Table };
        var command = new Command("io",
            "Boot guests writing to their disks on one host; print each VM's entitled and measured write bandwidth for disk shares 2:1, then for limits.")
        {
            vms, window, output,
        };
        command.SetAction((parse, ct) => RunAsync(new IoBenchOptions(parse.GetValue(vms), parse.GetValue(window), parse.GetValue(output)), ct));
        return command;
    }

    private static string Name(int i) => $"io-{(char)('a' + i)}";

    /// <summary>Each VM's resources patch per phase: the first VM weighs 2, the others 1; then limits 3, 1.5, 1 … MiB/s.</summary>
    private static IReadOnlyList<(string Phase, Func<int, string> Patch)> Phases(int vms) =>
    [
        ($"shares {string.Join(":", Enumerable.Range(0, vms).Select(i => i == 0 ? 2 : 1))} (host {BpsPerGuest * vms / MiB} MiB/s)",
            i => $$"""{"diskShares":{{(i == 0 ? 200 : 100)}},"diskBps":null}"""),
        ("limits", i => $$"""{"diskShares":null,"diskBps":{{Limit(i)}}}"""),
    ];

    private static long Limit(int i) => 3 * MiB / (i + 1);

    public static async Task<int> RunAsync(IoBenchOptions options, CancellationToken ct)
    {
        var capacity = new HostDiskCapacity(0, BpsPerGuest * options.Vms);
        var window = TimeSpan.FromSeconds(options.WindowSeconds);
        var root = Directory.CreateTempSubdirectory("orio").FullName;
        LocalNode? node = null;
        try
        {
            node = await LocalNode.StartAsync(root, [
                "--set", $"orchestrator.host-id=bench-io-{Environment.ProcessId}",
                "--set", $"orchestrator.storage.host-iops={capacity.Iops}",
                "--set", $"orchestrator.storage.host-bps={capacity.Bps}",
            ], ct);
            Console.Error.WriteLine($"io: {options.Vms} guests writing to their disks, host disk {capacity.Bps / MiB} MiB/s, window {window.TotalSeconds:0} s");

            var userData = Convert.ToBase64String(GuestDiskWriter.UserData);
            for (var i = 0; i < options.Vms; i++)
            {
                var create = await node.Http.PostAsync("v1/vms", BenchHttp.JsonContent(
                    $$"""{"name":"{{Name(i)}}","vcpus":1,"memoryMiB":128,"image":"demo","restartPolicy":"never","userData":"{{userData}}"}"""), ct);
                if (!create.IsSuccessStatusCode)
                {
                    throw new InvalidOperationException($"create {Name(i)}: {(int)create.StatusCode} {await create.Content.ReadAsStringAsync(ct)}");
                }
            }

            await BenchHttp.Until(async () => (await BenchHttp.GetArray(node, "v1/vms"))?.All(v => (string?)v!["state"] == "Ready") == true,
                TimeSpan.FromMinutes(3), "every guest Ready", ct, async () => string.Join("; ",
                    (await BenchHttp.GetArray(node, "v1/vms") ?? []).Select(v => $"{v!["name"]} {v["state"]} {v["reason"]}")));
            var consoles = new List<string>();
            for (var i = 0; i < options.Vms; i++)
            {
                var vm = await BenchHttp.GetObject(node, $"v1/vms/{Name(i)}") ?? throw new InvalidOperationException($"{Name(i)} is gone");
                consoles.Add(Path.Combine(node.RunDir, "vms", (string)vm["id"]!, "console.log"));
            }

            var results = new List<VmBandwidth>();
            foreach (var (phase, patch) in Phases(options.Vms))
            {
                var members = new List<DiskShares.Member>();
                for (var i = 0; i < options.Vms; i++)
                {
                    var patched = await node.Http.SendAsync(new HttpRequestMessage(HttpMethod.Patch, $"v1/vms/{Name(i)}/resources")
                    {
                        Content = BenchHttp.JsonContent(patch(i)),
                    }, ct);
                    if (!patched.IsSuccessStatusCode)
                    {
                        throw new InvalidOperationException($"set {Name(i)}: {(int)patched.StatusCode} {await patched.Content.ReadAsStringAsync(ct)}");
                    }

                    var resources = (await BenchHttp.GetObject(node, $"v1/vms/{Name(i)}"))!["resources"]!;
                    members.Add(new DiskShares.Member(new VmId(Guid.NewGuid()), (int?)resources["diskShares"] ?? DiskLimits.DefaultShares,
                        (long?)resources["diskIops"], (long?)resources["diskBps"]));
                }

                // What the host agent divides: the same function, on what the ledger now holds.
                var entitled = DiskShares.Divide(capacity, members);
                await Task.Delay(Settle, ct);
                var from = new List<int>();
                foreach (var console in consoles)
                {
                    from.Add(GuestDiskWriter.Parse(await GuestDiskWriter.ReadConsoleAsync(console)).Select(s => s.Seq).DefaultIfEmpty(0).Max());
                }

                await Task.Delay(window, ct);
                for (var i = 0; i < options.Vms; i++)
                {
                    var chunks = GuestDiskWriter.Parse(await GuestDiskWriter.ReadConsoleAsync(consoles[i])).Where(s => s.Seq > from[i]).OrderBy(s => s.Seq).ToList();
                    if (chunks.Count == 0)
                    {
                        throw new InvalidOperationException($"{Name(i)} wrote no whole chunk in {window.TotalSeconds:0} s");
                    }

                    var measured = chunks.Sum(c => c.Bytes) / Math.Max(chunks[^1].End - chunks[0].Start, 0.01);
                    var expected = entitled[members[i].VmId].Bps;
                    results.Add(new VmBandwidth(phase, Name(i), members[i].Shares, members[i].BpsLimit, expected,
                        Math.Round(measured), expected is { } e ? Math.Round((measured - e) / e, 4) : double.NaN));
                }

                Console.Error.WriteLine($"  {phase}: measured {string.Join(" / ", results.Where(r => r.Phase == phase).Select(r => MiBs(r.MeasuredBps)))}");
            }

            for (var i = 0; i < options.Vms; i++)
            {
                await node.Http.DeleteAsync($"v1/vms/{Name(i)}", ct);
            }

            await BenchHttp.Until(async () => (await BenchHttp.GetArray(node, "v1/vms"))?.Count == 0, TimeSpan.FromSeconds(60),
                "every guest deleted", ct);
            Print(options, capacity, window, results);
            return 0;
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or HttpRequestException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 1;
        }
        finally
        {
            if (node is not null)
            {
                await node.DisposeAsync();
            }

            BenchHttp.RemoveDataDir(root);
        }
    }

    private static void Print(IoBenchOptions options, HostDiskCapacity capacity, TimeSpan window, List<VmBandwidth> results)
    {
        var maxError = results.Where(r => !double.IsNaN(r.RelativeError)).Select(r => Math.Abs(r.RelativeError)).DefaultIfEmpty(0).Max();
        if (options.Output == OutputFormat.Json)
        {
            var json = new JsonObject
            {
                ["host_bps"] = capacity.Bps,
                ["window_s"] = window.TotalSeconds,
                ["max_relative_error"] = Math.Round(maxError, 4),
                ["vms"] = JsonSerializer.SerializeToNode(results, Json),
            };
            Console.WriteLine(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return;
        }

        Console.WriteLine($"io: {options.Vms} guests writing to their disks (oflag=direct), host disk {MiBs(capacity.Bps)}, measured by each guest over {window.TotalSeconds:0} s");
        Console.WriteLine($"{"PHASE",-32} {"VM",-6} {"SHARES",6} {"LIMIT",12} {"ENTITLED",12} {"MEASURED",12} {"ERROR",7}");
        foreach (var r in results)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Phase,-32} {r.Vm,-6} {r.Shares,6} {(r.LimitBps is { } l ? MiBs(l) : "-"),12} {(r.EntitledBps is { } e ? MiBs(e) : "-"),12} " +
                $"{MiBs(r.MeasuredBps),12} {(double.IsNaN(r.RelativeError) ? "-" : (r.RelativeError * 100).ToString("+0.0;-0.0;0.0", CultureInfo.InvariantCulture) + "%"),7}"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"largest relative error: {maxError * 100:0.0}%"));
    }

    private static string MiBs(double bps) => (bps / MiB).ToString("0.00", CultureInfo.InvariantCulture) + " MiB/s";
}

/// <summary>One VM in one phase: the write bandwidth it is entitled to and what its guest measured, in bytes per second.</summary>
public sealed record VmBandwidth(string Phase, string Vm, int Shares, long? LimitBps, long? EntitledBps, double MeasuredBps, double RelativeError);
