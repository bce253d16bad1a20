using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.Cli;
using Orchestrator.Domain;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;

namespace Orchestrator.Tools.Bench;

/// <summary>
/// `bench shares`: one node whose VMs may only use one physical CPU, three guests burning that CPU, and for each
/// setting (shares 2:1:1, then a reservation and a limit changed on the running guests, then two tenants' pools
/// weighed 1:3) the CPU each VM is entitled to
/// next to the CPU its QEMU process really got over the window, read from /proc (CPU time, not wall-clock speed).
/// </summary>
public static class SharesBenchmark
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Time for usage reports and a recompute to follow a change before measuring.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(5);

    private static readonly string[] Names = ["share-a", "share-b", "share-c"];

    /// <summary>a alone in one tenant, b and c together in another: the last phase weighs the tenants' pools.</summary>
    private static readonly string[] Tenants = ["bench-solo", "bench-crowd", "bench-crowd"];

    private static readonly Phase[] Phases =
    [
        new("shares 2:1:1", [
            """{"cpuShares":2048,"cpuReservationMillicores":null,"cpuLimitMillicores":null}""",
            """{"cpuShares":1024,"cpuReservationMillicores":null,"cpuLimitMillicores":null}""",
            """{"cpuShares":1024,"cpuReservationMillicores":null,"cpuLimitMillicores":null}"""]),
        new("reservation 600m on a, limit 100m on b", [
            """{"cpuShares":1024,"cpuReservationMillicores":600}""",
            """{"cpuLimitMillicores":100}""",
            """{}"""]),
        new("tenant pools 1:3 (a alone; b and c)", [
            """{"cpuReservationMillicores":null}""",
            """{"cpuLimitMillicores":null}""",
            """{}"""])
        {
            Pools = ["""{"pool":{"cpuShares":1000}}""", """{"pool":{"cpuShares":3000}}"""],
        },
    ];

    private static string VmPath(int i, string suffix = "") => $"v1/vms/{Names[i]}{suffix}?tenant={Tenants[i]}";

    public static async Task<int> RunAsync(SharesBenchOptions options, CancellationToken ct)
    {
        var layout = CgroupLayout.Detect();
        if (layout.Version == CgroupVersion.None)
        {
            Console.Error.WriteLine($"error: bench shares needs cgroups: {layout.Problem}");
            return 1;
        }

        var cpu = options.Cpu ?? Environment.ProcessorCount - 1;
        if (cpu < 0 || cpu >= Environment.ProcessorCount)
        {
            Console.Error.WriteLine($"error: --cpu {cpu}: this machine has CPUs 0-{Environment.ProcessorCount - 1}");
            return 2;
        }

        var window = TimeSpan.FromSeconds(options.WindowSeconds);
        var hostId = $"bench-shares-{Environment.ProcessId}";
        var root = Directory.CreateTempSubdirectory("orsb").FullName;
        LocalNode? node = null;
        try
        {
            // The node itself runs on the other CPUs, so the measured CPU is the guests' alone.
            var others = Enumerable.Range(0, Environment.ProcessorCount).Where(c => c != cpu).ToList();
            node = await LocalNode.StartAsync(root, [
                "--set", $"orchestrator.host-id={hostId}",
                "--set", $"orchestrator.host.cpuset=\"{cpu}\"",
                "--set", "orchestrator.host.cgroups=required",
                // This measures how the guests divide the CPU, not how they fare against the machine's other work.
                "--set", $"orchestrator.host.cgroup-weight={Domain.Vms.VmResources.MaxShares}",
            ], ct, others.Count > 0 ? CpuSet.Format(others) : null);
            Console.Error.WriteLine($"shares: {Names.Length} burning guests on CPU {cpu}, window {window.TotalSeconds:0} s");

            foreach (var tenant in Tenants.Distinct())
            {
                await node.Http.PostAsync("v1/tenants", BenchHttp.JsonContent($$"""{"id":"{{tenant}}"}"""), ct);
            }

            for (var i = 0; i < Names.Length; i++)
            {
                var create = await node.Http.PostAsync($"v1/vms?tenant={Tenants[i]}", BenchHttp.JsonContent(
                    $$"""{"name":"{{Names[i]}}","vcpus":1,"memoryMiB":128,"image":"demo-burn","restartPolicy":"never"}"""), ct);
                if (!create.IsSuccessStatusCode)
                {
                    throw new InvalidOperationException($"create {Names[i]}: {(int)create.StatusCode} {await create.Content.ReadAsStringAsync(ct)}");
                }
            }

            await BenchHttp.Until(async () => (await BenchHttp.GetArray(node, "v1/vms"))?.All(v => (string?)v!["state"] == "Ready") == true,
                TimeSpan.FromMinutes(3), "every guest Ready", ct, async () => string.Join("; ",
                    (await BenchHttp.GetArray(node, "v1/vms") ?? []).Select(v => $"{v!["name"]} {v["state"]} {v["reason"]}")));

            var results = new List<PhaseResult>();
            foreach (var phase in Phases)
            {
                var tenants = Tenants.Distinct().ToList();
                for (var t = 0; t < (phase.Pools?.Length ?? 0); t++)
                {
                    var pool = await node.Http.SendAsync(new HttpRequestMessage(HttpMethod.Patch, $"v1/tenants/{tenants[t]}")
                    {
                        Content = BenchHttp.JsonContent(phase.Pools![t]),
                    }, ct);
                    if (!pool.IsSuccessStatusCode)
                    {
                        throw new InvalidOperationException($"pool of {tenants[t]}: {(int)pool.StatusCode} {await pool.Content.ReadAsStringAsync(ct)}");
                    }
                }

                for (var i = 0; i < Names.Length; i++)
                {
                    var request = new HttpRequestMessage(HttpMethod.Patch, VmPath(i, "/resources"))
                    {
                        Content = BenchHttp.JsonContent(phase.Patches[i]),
                    };
                    var patched = await node.Http.SendAsync(request, ct);
                    if (!patched.IsSuccessStatusCode)
                    {
                        throw new InvalidOperationException($"set {Names[i]}: {(int)patched.StatusCode} {await patched.Content.ReadAsStringAsync(ct)}");
                    }
                }

                await Task.Delay(Settle, ct);
                results.Add(await MeasureAsync(node, phase.Name, window, ct));
                Console.Error.WriteLine($"  {phase.Name}: measured {string.Join(" / ", results[^1].Vms.Select(v => Share(v.Measured)))}");
            }

            for (var i = 0; i < Names.Length; i++)
            {
                await node.Http.DeleteAsync(VmPath(i), ct);
            }

            await BenchHttp.Until(async () => (await BenchHttp.GetArray(node, "v1/vms"))?.Count == 0, TimeSpan.FromSeconds(60),
                "every guest deleted", ct);
            var cgroups = new VmCgroups(layout, hostId);
            await BenchHttp.Until(() => Task.FromResult(cgroups.List().Count == 0), TimeSpan.FromSeconds(15), "VM cgroups removed", ct);

            Print(options, cpu, window, results, cgroups.List().Count);
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

            try
            {
                new VmCgroups(layout, hostId).RemoveScope();
            }
            catch (Exception ex) when (ex is HypervisorException or IOException)
            {
                Console.Error.WriteLine($"warning: cgroup scope {hostId} left in place: {ex.Message}");
            }

            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Each guest's QEMU process CPU time over the window, next to its entitlement (both in CPUs).</summary>
    private static async Task<PhaseResult> MeasureAsync(LocalNode node, string phase, TimeSpan window, CancellationToken ct)
    {
        var vms = new List<JsonObject>();
        for (var i = 0; i < Names.Length; i++)
        {
            vms.Add(await BenchHttp.GetObject(node, VmPath(i)) ?? throw new InvalidOperationException($"{Names[i]} is gone"));
        }

        var pids = vms.Select(v => (int?)v["pid"] ?? throw new InvalidOperationException($"{v["name"]} has no process")).ToList();
        var before = pids.Select(CpuSeconds).ToList();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Task.Delay(window, ct);
        var after = pids.Select(CpuSeconds).ToList();
        var seconds = clock.Elapsed.TotalSeconds;

        var rows = new List<VmShare>();
        for (var i = 0; i < Names.Length; i++)
        {
            var shown = await BenchHttp.GetObject(node, VmPath(i)) ?? vms[i];
            var resources = shown["resources"]!;
            var entitled = ((long?)resources["entitledCpuMillicores"] ?? 0) / 1000.0;
            var measured = (after[i] - before[i]) / seconds;
            rows.Add(new VmShare(phase, Names[i], (int)resources["cpuShares"]!, (int)resources["cpuReservationMillicores"]!,
                (int?)resources["cpuLimitMillicores"], Math.Round(entitled, 4), Math.Round(measured, 4),
                entitled > 0 ? Math.Round((measured - entitled) / entitled, 4) : double.NaN));
        }

        return new PhaseResult(phase, rows);
    }

    private static double CpuSeconds(int pid) =>
        ProcStat.ReadProcessCpuTime(pid)?.TotalSeconds ?? throw new InvalidOperationException($"process {pid} is gone");

    private static void Print(SharesBenchOptions options, int cpu, TimeSpan window, List<PhaseResult> results, int cgroupsLeft)
    {
        var all = results.SelectMany(r => r.Vms).ToList();
        var maxError = all.Max(v => Math.Abs(v.RelativeError));
        if (options.Output == OutputFormat.Json)
        {
            var json = new JsonObject
            {
                ["cpu"] = cpu,
                ["window_s"] = window.TotalSeconds,
                ["max_relative_error"] = Math.Round(maxError, 4),
                ["cgroups_left"] = cgroupsLeft,
                ["guests_total"] = JsonSerializer.SerializeToNode(results.ToDictionary(r => r.Name, r => Math.Round(r.Vms.Sum(v => v.Measured), 4))),
                ["vms"] = JsonSerializer.SerializeToNode(all, Json),
            };
            Console.WriteLine(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return;
        }

        Console.WriteLine($"shares: {Names.Length} guests burning CPU {cpu}, measured over {window.TotalSeconds:0} s (QEMU process CPU time)");
        Console.WriteLine($"{"PHASE",-40} {"VM",-8} {"SHARES",6} {"RESERVED",8} {"LIMIT",6} {"ENTITLED",9} {"MEASURED",9} {"ERROR",7}");
        foreach (var v in all)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{v.Phase,-40} {v.Vm,-8} {v.Shares,6} {Millicores(v.ReservationMillicores),8} {Millicores(v.LimitMillicores),6} " +
                $"{Share(v.Entitled),9} {Share(v.Measured),9} {Percent(v.RelativeError),7}"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"largest relative error: {maxError * 100:0.0}%"));
        Console.WriteLine(string.Join("; ", results.Select(r =>
            $"{r.Name}: the guests got {Share(r.Vms.Sum(v => v.Measured))} of the CPU together")));
    }

    private static string Percent(double fraction) =>
        (fraction * 100).ToString("+0.0;-0.0;0.0", CultureInfo.InvariantCulture) + "%";

    private static string Share(double cpus) => cpus.ToString("0.000", CultureInfo.InvariantCulture);

    private static string Millicores(int? millicores) => millicores is > 0 and var m ? $"{m}m" : "-";

    /// <param name="Patches">each VM's resources patch.</param>
    private sealed record Phase(string Name, string[] Patches)
    {
        /// <summary>Each tenant's patch (in the order of <see cref="Tenants"/>, distinct), applied first.</summary>
        public string[]? Pools { get; init; }
    }

    private sealed record PhaseResult(string Name, IReadOnlyList<VmShare> Vms);
}

/// <summary>One VM in one phase: CPUs it is entitled to and CPUs it got (fractions of the one CPU).</summary>
public sealed record VmShare(
    string Phase,
    string Vm,
    int Shares,
    int ReservationMillicores,
    int? LimitMillicores,
    double Entitled,
    double Measured,
    double RelativeError);
