using System.Text.Json;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Cli;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Vms;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Orchestrator.Simulation;

/// <summary>
/// <c>orchestrator bench placement</c>: decisions in memory, through the index alone and through the ledger's own
/// Decide + Apply; <c>bench durable</c>: creations through the scheduler actor, persisted to SQLite.
/// Hosts are simulated, 48 vCPUs / 384 GiB; VMs are the 16 Azure V1 flavours; releases keep the cluster about 70 % full.
/// </summary>
public static class BenchCommand
{
    public const int HostCpus = 48;
    public const long HostMemoryMiB = 384L * 1024;

    /// <summary>The Azure V1 flavours (flav_map.txt): vCPUs, memory MiB.</summary>
    internal static readonly (int Vcpus, long MemoryMiB)[] Flavours =
    [
        (1, 768), (1, 1792), (1, 2048), (16, 114688), (2, 14336), (2, 16384), (2, 3584), (2, 4096),
        (4, 28672), (4, 32768), (4, 7168), (4, 8192), (8, 14336), (8, 16384), (8, 57344), (8, 65536),
    ];

    public sealed record Latency(double P50Ms, double P99Ms, double MaxMs);

    public sealed record InMemoryReport(
        string Mode, int Hosts, int HostCpus, long HostMemoryGib, string Policy, int Requests, int Rate,
        double DecisionsPerS, Latency Latency, double LedgerDecisionsPerS, Latency LedgerLatency, double Utilisation,
        double ConstrainedDecisionsPerS = 0, Latency? ConstrainedLatency = null, double ConstrainedPending = 0,
        long IndexBytesPerDecision = 0, long LedgerBytesPerDecision = 0);

    public sealed record DurableReport(
        string Mode, int Hosts, int Requests, int WarmupRequests, int Rate, int Concurrency, string Policy, int Placed, int Pending,
        double PlacementsPerS, Latency Latency, double WallS, string Store, DurableCosts? Costs = null, StoreLimit? Limit = null,
        LimitRatios? Ratios = null, int SnapshotEvery = 0, JournalWriterLimit? Writer = null, int PrimingRequests = 0);

    /// <summary>What the measured requests cost the whole process (scheduler, journal, the bench's own asks), per placement.</summary>
    /// <param name="CompilerMs">what the JIT compiler ran during the measured window, all threads: tiered compilation goes
    /// on promoting hot methods for many seconds after a start (and compiles what a snapshot first runs when it first
    /// runs), so part of a short window's CPU is the compiler's, not the scheduler's.</param>
    /// <param name="GcPauseMs">how long the runtime held every thread still for its collections during the window: at an
    /// offered rate, the requests that arrive during a pause wait it out, and those are the tail.</param>
    public sealed record DurableCosts(double CpuMsPerPlacement, long BytesAllocatedPerPlacement, int Gen0Collections, int Gen2Collections,
        double CompilerMs = 0, double GcPauseMs = 0);

    /// <summary>
    /// The figures against the store's own limit, measured in the same run: placements/s over batched rows/s (each placement
    /// writes two journal rows and their tag rows, so 1.0 is out of reach), and p50/p99 latency over a one-row commit's;
    /// and placements/s over what the journal's writer alone wrote of the same rows per second (1.0: nothing but the
    /// writer costs anything).
    /// </summary>
    public sealed record LimitRatios(double PlacementsToRows, double P50ToCommitP50, double P99ToCommitP99, double PlacementsToWriter = 0);

    private static double Ratio(double figure, double limit) => limit <= 0 ? 0 : Math.Round(figure / limit, 4);

    public static async Task<int> RunAsync(BenchOptions o, CancellationToken ct)
    {
        if (o.Durable)
        {
            var report = await DurableAsync(o, ct);
            Print(o.Output, report, () =>
            {
                Console.WriteLine($"durable placements through the scheduler actor, journal: {report.Store}, a snapshot every {report.SnapshotEvery:N0} events");
                Console.WriteLine($"  {o.Hosts} simulated hosts of {HostCpus} vCPUs / {HostMemoryMiB / 1024} GiB, policy {o.Policy}; " +
                                  (o.Rate > 0 ? $"offered {o.Rate} requests/s" : $"closed loop, {o.Concurrency} in flight"));
                Console.WriteLine($"  requests {report.Requests} (after {report.WarmupRequests} not measured" +
                                  (report.PrimingRequests > 0 ? $", and {report.PrimingRequests} to a scheduler of their own before, until the compiler was done" : "") +
                                  $"), placed {report.Placed}, pending {report.Pending}, {report.WallS:0.00} s");
                Console.WriteLine($"  placements/s  {report.PlacementsPerS:N0}");
                Console.WriteLine($"  latency ms    p50 {report.Latency.P50Ms:0.000}  p99 {report.Latency.P99Ms:0.000}  max {report.Latency.MaxMs:0.000}");
                if (report is { Limit: { } limit, Ratios: { } ratios, Costs: { } costs })
                {
                    Console.WriteLine($"  the limit, {limit.Store} here in this run: {limit.RowsPerS:N0} rows/s in transactions of {StoreLimit.BatchRows} " +
                                      $"{StoreLimit.RowBytes}-byte rows; one-row commit p50 {limit.CommitP50Ms:0.000} ms  p99 {limit.CommitP99Ms:0.000} ms");
                    if (report.Writer is { } writer)
                    {
                        Console.WriteLine($"  the writer    the window's rows written again by the journal's writer alone ({writer.RowsPerRequest:0.0} rows and " +
                                          $"{writer.TagsPerRequest:0.0} tag rows a request, {report.Concurrency} writes waiting): {writer.RequestsPerS:N0} requests/s " +
                                          $"({writer.RowsPerS:N0} rows/s), {writer.CpuMsPerRequest:0.000} CPU ms a request");
                    }

                    Console.WriteLine($"  ratio         placements/s : rows/s {ratios.PlacementsToRows:P1};  p50 {ratios.P50ToCommitP50:0.0}x  p99 {ratios.P99ToCommitP99:0.0}x a one-row commit's" +
                                      (report.Writer is null ? "" : $";  placements/s : the writer's {ratios.PlacementsToWriter:P1}"));
                    Console.WriteLine($"  cost          {costs.CpuMsPerPlacement:0.000} CPU ms and {costs.BytesAllocatedPerPlacement:N0} bytes allocated per placement (whole process); " +
                                      $"GCs gen0 {costs.Gen0Collections}, gen2 {costs.Gen2Collections}; JIT compiler {costs.CompilerMs:N0} ms in the window; " +
                                      $"GC pauses {costs.GcPauseMs:N0} ms in the window");
                }
            });
            return 0;
        }

        var memory = InMemory(o);
        Print(o.Output, memory, () =>
        {
            Console.WriteLine($"placement decisions in memory, one thread: {o.Hosts} simulated hosts of {HostCpus} vCPUs / {HostMemoryMiB / 1024} GiB, " +
                              $"policy {o.Policy}, {o.Requests} requests" + (o.Rate > 0 ? $" offered at {o.Rate}/s" : ""));
            Console.WriteLine($"  CapacityIndex         {memory.DecisionsPerS,12:N0} decisions/s   latency ms p50 {memory.Latency.P50Ms:0.0000}  p99 {memory.Latency.P99Ms:0.0000}  max {memory.Latency.MaxMs:0.000}");
            Console.WriteLine($"  LedgerState (Decide+Apply) {memory.LedgerDecisionsPerS,6:N0} decisions/s   latency ms p50 {memory.LedgerLatency.P50Ms:0.0000}  p99 {memory.LedgerLatency.P99Ms:0.0000}  max {memory.LedgerLatency.MaxMs:0.000}");
            Console.WriteLine($"    bytes allocated per decision: CapacityIndex {memory.IndexBytesPerDecision:N0}, LedgerState Decide+Apply {memory.LedgerBytesPerDecision:N0}");
            Console.WriteLine($"  LedgerState, steered       {memory.ConstrainedDecisionsPerS,6:N0} decisions/s   latency ms p50 {memory.ConstrainedLatency!.P50Ms:0.0000}  p99 {memory.ConstrainedLatency.P99Ms:0.0000}  max {memory.ConstrainedLatency.MaxMs:0.000}");
            Console.WriteLine($"    (hosts labelled zone=a|b|c and half ssd=true; a third of requests with a host selector, a tenth in " +
                              $"{AntiAffinityGroups} anti-affinity groups; {memory.ConstrainedPending:P1} left pending)");
            Console.WriteLine($"  cluster utilisation kept about {memory.Utilisation:P0} (vCPUs) by releases");
        });
        return 0;
    }

    private static void Print<T>(OutputFormat output, T report, Action table)
    {
        if (output == OutputFormat.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(report, SimulateCommand.Json));
        }
        else
        {
            table();
        }
    }

    /// <summary>A deterministic request stream: a flavour, and whether a random live VM leaves first.</summary>
    internal sealed class Workload(int hosts, int seed = 7)
    {
        private readonly Random _random = new(seed);
        private readonly long _targetVcpus = (long)(hosts * (long)HostCpus * 0.7);

        public long LiveVcpus { get; set; }

        public (int Vcpus, long MemoryMiB) NextFlavour() => Flavours[_random.Next(Flavours.Length)];

        public bool ShouldRelease => LiveVcpus > _targetVcpus;

        public int Pick(int count) => _random.Next(count);
    }

    internal static InMemoryReport InMemory(BenchOptions o)
    {
        var policy = new PlacementPolicy(1.0, 1.0, SimulateCommand.ParseStrategy(o.Policy));
        // Each run first as a warm-up, shorter, until the compiler is done with it: the figures are the structures', not the JIT's.
        var warmUp = o with { Requests = Math.Min(o.Requests, WarmUpRequests) };
        JitWarmUp.UntilSettled(_ => IndexRun(warmUp, policy), MaxWarmUpRounds);
        JitWarmUp.UntilSettled(_ => LedgerRun(warmUp, policy, steered: false), MaxWarmUpRounds);
        JitWarmUp.UntilSettled(_ => LedgerRun(warmUp, policy, steered: true), MaxWarmUpRounds);
        var (rate, latency, utilisation, indexBytes) = IndexRun(o, policy);
        var (ledgerRate, ledgerLatency, _, ledgerBytes) = LedgerRun(o, policy, steered: false);
        var (steeredRate, steeredLatency, pending, _) = LedgerRun(o, policy, steered: true);
        return new InMemoryReport("in-memory", o.Hosts, HostCpus, HostMemoryMiB / 1024, o.Policy, o.Requests, o.Rate,
            Math.Round(rate), latency, Math.Round(ledgerRate), ledgerLatency, Math.Round(utilisation, 3),
            Math.Round(steeredRate), steeredLatency, Math.Round(pending, 4), indexBytes, ledgerBytes);
    }

    private const int WarmUpRequests = 20_000;
    private const int MaxWarmUpRounds = 10;

    /// <returns>also the bytes allocated per decision (on this thread, inside the timed part only).</returns>
    private static (double Rate, Latency Latency, double Utilisation, long BytesPerDecision) IndexRun(BenchOptions o, PlacementPolicy policy)
    {
        var placer = new IndexPlacer(o.Hosts, HostCpus, HostMemoryMiB, policy);
        var workload = new Workload(o.Hosts);
        var live = new List<(int Host, int Vcpus, long Memory)>();
        var samples = new long[o.Requests];
        long total = 0, allocated = 0;
        var pacer = new Pacer(o.Rate);
        for (var i = 0; i < o.Requests; i++)
        {
            while (workload.ShouldRelease && live.Count > 0)
            {
                var at = workload.Pick(live.Count);
                var gone = live[at];
                live[at] = live[^1];
                live.RemoveAt(live.Count - 1);
                placer.Release(gone.Host, gone.Vcpus, gone.Memory);
                workload.LiveVcpus -= gone.Vcpus;
            }

            var (vcpus, memory) = workload.NextFlavour();
            pacer.Wait(i);
            var bytes = GC.GetAllocatedBytesForCurrentThread();
            var t0 = Stopwatch.GetTimestamp();
            var host = placer.Place(vcpus, memory);
            var ticks = Stopwatch.GetTimestamp() - t0;
            allocated += GC.GetAllocatedBytesForCurrentThread() - bytes;
            samples[i] = ticks;
            total += ticks;
            if (host >= 0)
            {
                live.Add((host, vcpus, memory));
                workload.LiveVcpus += vcpus;
            }
        }

        return (o.Requests / ((double)total / Stopwatch.Frequency), Percentiles(samples), workload.LiveVcpus / (double)(o.Hosts * (long)HostCpus),
            allocated / o.Requests);
    }

    public const int AntiAffinityGroups = 1000;

    private static readonly string[][] Selectors = [["zone=a"], ["ssd"], ["zone!=c", "ssd=true"]];

    /// <summary>The same stream through <see cref="LedgerState"/>: Decide (validate, place) then Apply, as the scheduler does.</summary>
    /// <param name="steered">hosts with labels, a third of the VMs with a host selector and a tenth in anti-affinity groups.</param>
    /// <returns>also the fraction of requests no host could take, and the bytes allocated per Decide+Apply.</returns>
    private static (double Rate, Latency Latency, double Pending, long BytesPerDecision) LedgerRun(BenchOptions o, PlacementPolicy policy, bool steered)
    {
        var rules = new LedgerRules(policy, new VmSpecLimits(1024, 0, int.MaxValue), new HashSet<string> { DurableScheduler.Image });
        var now = DateTimeOffset.UnixEpoch;
        var state = LedgerState.Empty;
        for (var i = 0; i < o.Hosts; i++)
        {
            IReadOnlyDictionary<string, string>? labels = steered
                ? new Dictionary<string, string> { ["zone"] = ((char)('a' + i % 3)).ToString(), ["ssd"] = i % 2 == 0 ? "true" : "false" }
                : null;
            state = state.Apply(new LedgerEvents.HostRegistered(SimulatedHosts.Id(i), HostCpus, HostMemoryMiB, SimulatedHosts.Driver, now, Labels: labels));
        }

        for (var g = 0; steered && g < AntiAffinityGroups; g++)
        {
            state = state.Apply(new PlacementEvents.GroupCreated(TenantId.System, $"g{g}", GroupPolicy.AntiAffinity, now));
        }

        var pending = 0;

        var workload = new Workload(o.Hosts);
        var live = new List<(VmId Id, int Vcpus)>();
        var samples = new long[o.Requests];
        long total = 0, allocated = 0;
        var pacer = new Pacer(o.Rate);
        for (var i = 0; i < o.Requests; i++)
        {
            while (workload.ShouldRelease && live.Count > 0)
            {
                var at = workload.Pick(live.Count);
                var gone = live[at];
                live[at] = live[^1];
                live.RemoveAt(live.Count - 1);
                state = state.Apply(new LedgerEvents.VmReleased(gone.Id));
                workload.LiveVcpus -= gone.Vcpus;
            }

            var (vcpus, memory) = workload.NextFlavour();
            var create = DurableScheduler.Create(i, vcpus, memory);
            if (steered)
            {
                create = create with
                {
                    Spec = create.Spec with
                    {
                        HostSelector = i % 3 == 0 ? Selectors[i / 3 % Selectors.Length] : null,
                        Group = i % 10 == 1 ? $"g{workload.Pick(AntiAffinityGroups)}" : null,
                    },
                };
            }

            pacer.Wait(i);
            var bytes = GC.GetAllocatedBytesForCurrentThread();
            var t0 = Stopwatch.GetTimestamp();
            var decision = state.Decide(create, rules, now);
            foreach (var evt in decision.Events)
            {
                state = state.Apply(evt);
            }

            var ticks = Stopwatch.GetTimestamp() - t0;
            allocated += GC.GetAllocatedBytesForCurrentThread() - bytes;
            samples[i] = ticks;
            total += ticks;
            if (decision.Events.OfType<LedgerEvents.VmPlaced>().Any())
            {
                live.Add((create.NewId, vcpus));
                workload.LiveVcpus += vcpus;
            }
            else
            {
                state = state.Apply(new LedgerEvents.VmReleased(create.NewId)); // a pending VM would wait; here it gives up
                pending++;
            }
        }

        return (o.Requests / ((double)total / Stopwatch.Frequency), Percentiles(samples), pending / (double)o.Requests, allocated / o.Requests);
    }

    private static async Task<DurableReport> DurableAsync(BenchOptions o, CancellationToken ct)
    {
        var primed = o.Rate <= 0 ? await PrimeAsync(o, ct) : 0;
        if (o.Store == "postgres")
        {
            await using var database = await BenchDatabase.CreateAsync(ct);
            return await DurableAsync(o, database.ConnectionString, $"PostgreSQL database {database.Name} (dropped after)", ct) with { PrimingRequests = primed };
        }

        return await DurableAsync(o, null, null, ct) with { PrimingRequests = primed };
    }

    /// <summary>
    /// Before a closed-loop run: the same requests through a scheduler of its own, on a store of its own (a temporary
    /// directory, or a database of its own on the same server), thrown away after, in rounds until the compiler is done
    /// with them (<see cref="JitWarmUp"/>). Why: tiered compilation promotes the hot paths over a run's first seconds, and a
    /// closed-loop window at 10,000 hosts lasts about two: its own warm-up of 5,000 requests (all the cluster can spare
    /// before it fills) left 0.6-0.9 s of compiling in it, and the window measured the compiler at 16-21k placements/s
    /// where a window of 150,000 requests ran at 25.6k (25.9k with tiering off, the compiler 0.1 s). A node that has run
    /// a while has compiled them once.
    /// </summary>
    /// <returns>the requests sent to the thrown-away scheduler.</returns>
    private static async Task<int> PrimeAsync(BenchOptions o, CancellationToken ct)
    {
        // Rounds that the hosts can take all together (a host takes about 9.8 VMs of the mix).
        var perRound = Math.Clamp(o.Hosts * 9 / MaxPrimingRounds, 1, 10_000);
        await using var database = o.Store == "postgres" ? await BenchDatabase.CreateAsync(ct) : null;
        await using var durable = DurableScheduler.Create(null, SimulateCommand.ParseStrategy(o.Policy), o.SnapshotEvery, database?.ConnectionString);
        await durable.RegisterHostsAsync(o.Hosts, HostCpus, HostMemoryMiB);
        var workload = new Workload(o.Hosts, seed: 13);
        var sent = 0;
        await JitWarmUp.UntilSettledAsync(async _ =>
        {
            var first = sent;
            var flavours = Enumerable.Range(0, perRound).Select(_ => workload.NextFlavour()).ToArray();
            await ClosedLoopClient.RunAsync(durable.System, durable.Scheduler, perRound, o.Concurrency,
                n => DurableScheduler.Create(first + n, flavours[n].Vcpus, flavours[n].MemoryMiB), (_, _, _) => { });
            sent += perRound;
        }, MaxPrimingRounds);
        return sent;
    }

    private const int MaxPrimingRounds = 8;

    private static async Task<DurableReport> DurableAsync(BenchOptions o, string? postgres, string? storeName, CancellationToken ct)
    {
        await using var durable = DurableScheduler.Create(o.DataDirectory, SimulateCommand.ParseStrategy(o.Policy), o.SnapshotEvery, postgres);
        // Before the scheduler has work: the store's limit, on the same disk or server, not competing with the run.
        var limit = postgres is null ? StoreLimit.MeasureSqlite(durable.DataDirectory) : await StoreLimit.MeasurePostgresAsync(postgres, ct);
        await durable.RegisterHostsAsync(o.Hosts, HostCpus, HostMemoryMiB);
        var warmup = await WarmUpAsync(durable, o, ct);
        var lastBefore = await JournalWriterLimit.LastOrderingAsync(postgres, durable.DatabaseFile, ct);
        await JitWarmUp.UntilIdleAsync(TimeSpan.FromSeconds(5));
        var workload = new Workload(o.Hosts);
        var flavours = Enumerable.Range(0, o.Requests).Select(_ => workload.NextFlavour()).ToArray();
        var latencies = new long[o.Requests];
        int placed = 0, pending = 0;
        var process = global::System.Diagnostics.Process.GetCurrentProcess();
        var (cpu, bytes, gen0, gen2) = (process.TotalProcessorTime, GC.GetTotalAllocatedBytes(), GC.CollectionCount(0), GC.CollectionCount(2));
        var compiling = JitWarmUp.CompilationTime;
        var paused = GC.GetTotalPauseDuration();
        var wall = Stopwatch.StartNew();
        void Replied(int n, object reply, long ticks)
        {
            latencies[n] = ticks;
            if (reply is SchedulerReplies.VmAccepted { Vm.Host: not null })
            {
                Interlocked.Increment(ref placed);
            }
            else
            {
                Interlocked.Increment(ref pending);
            }
        }

        if (o.Rate <= 0)
        {
            // The closed loop: clients that are actors, so what the bench costs per request is a message each way.
            await ClosedLoopClient.RunAsync(durable.System, durable.Scheduler, o.Requests, o.Concurrency,
                n => DurableScheduler.Create(n, flavours[n].Vcpus, flavours[n].MemoryMiB), Replied);
        }

        if (o.Rate > 0)
        {
            await SendAtRateAsync(durable, o.Rate, o.Requests, n => DurableScheduler.Create(n, flavours[n].Vcpus, flavours[n].MemoryMiB),
                Replied, ct);
        }

        wall.Stop();
        process.Refresh();
        var costs = new DurableCosts(Math.Round((process.TotalProcessorTime - cpu).TotalMilliseconds / o.Requests, 4),
            (GC.GetTotalAllocatedBytes() - bytes) / o.Requests, GC.CollectionCount(0) - gen0, GC.CollectionCount(2) - gen2,
            Math.Round((JitWarmUp.CompilationTime - compiling).TotalMilliseconds, 1), Math.Round((GC.GetTotalPauseDuration() - paused).TotalMilliseconds, 1));
        var rate = Math.Round(o.Requests / wall.Elapsed.TotalSeconds);
        var latency = Percentiles(latencies);
        // After the window, the scheduler idle: the window's rows once more, through the writer alone.
        var writer = await JournalWriterLimit.MeasureAsync(postgres, durable.DatabaseFile, lastBefore, o.Requests, o.Concurrency, ct);
        var ratios = new LimitRatios(Ratio(rate, limit.RowsPerS), Ratio(latency.P50Ms, limit.CommitP50Ms), Ratio(latency.P99Ms, limit.CommitP99Ms),
            Ratio(rate, writer.RequestsPerS));
        return new DurableReport("durable", o.Hosts, o.Requests, warmup, o.Rate, o.Concurrency, o.Policy, placed, pending,
            rate, latency, Math.Round(wall.Elapsed.TotalSeconds, 3), storeName ?? "SQLite " + durable.DatabaseFile, costs, limit, ratios, o.SnapshotEvery,
            writer);
    }

    /// <summary>The open loop: request n goes out at its time, each answered on its own, as a node's API clients send them.</summary>
    private static async Task SendAtRateAsync(DurableScheduler durable, int rate, int count, Func<int, LedgerCommands.CreateVm> create,
        Action<int, object, long> replied, CancellationToken ct)
    {
        var tasks = new List<Task>(count);
        var pacer = new Pacer(rate);
        for (var i = 0; i < count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var message = create(i);
            await pacer.WaitAsync(i, ct);
            var n = i;
            var t0 = Stopwatch.GetTimestamp();
            tasks.Add(durable.AskAsync(message).ContinueWith(t => replied(n, t.Result, Stopwatch.GetTimestamp() - t0), TaskScheduler.Default));
        }

        await Task.WhenAll(tasks);
    }

    /// <summary>
    /// Creations before the measured ones, not counted: the runtime compiles the hot paths again, optimised, in its
    /// first seconds, and a run of a few seconds would otherwise measure the compiler as much as the scheduler.
    /// The closed loop warms up with 5,000 requests, the measured scheduler's own first writes and snapshot, after its
    /// requests were primed on a scheduler of their own (<see cref="PrimeAsync"/>); the cluster could not take more. The
    /// open loop warms up the way it is measured, at its rate through the same asks, in rounds
    /// of a second (at most 5,000 requests) until the compiler is done with them (<see cref="JitWarmUp"/>): one closed-loop
    /// burst left the asks' own path, and the promotions of the rest, to the measured window (0.85-1.24 s of compiling
    /// in a 20 s window at 1,000 requests/s, against 0.04-0.06 s after this warm-up).
    /// </summary>
    private static async Task<int> WarmUpAsync(DurableScheduler durable, BenchOptions o, CancellationToken ct)
    {
        var workload = new Workload(o.Hosts, seed: 11);
        if (o.Rate <= 0)
        {
            var count = Math.Min(5_000, o.Requests / 4);
            var flavours = Enumerable.Range(0, count).Select(_ => workload.NextFlavour()).ToArray();
            // Numbered after the measured requests, so names and ids never collide with theirs.
            await ClosedLoopClient.RunAsync(durable.System, durable.Scheduler, count, o.Concurrency,
                n => DurableScheduler.Create(o.Requests + n, flavours[n].Vcpus, flavours[n].MemoryMiB), (_, _, _) => { });
            return count;
        }

        var perRound = Math.Clamp(Math.Min(o.Rate, 5_000), 1, Math.Max(1, o.Requests));
        var sent = 0;
        await JitWarmUp.UntilSettledAsync(async _ =>
        {
            var first = o.Requests + sent; // after the measured requests and the earlier rounds: no name or id twice
            var flavours = Enumerable.Range(0, perRound).Select(_ => workload.NextFlavour()).ToArray();
            await SendAtRateAsync(durable, o.Rate, perRound, n => DurableScheduler.Create(first + n, flavours[n].Vcpus, flavours[n].MemoryMiB),
                (_, _, _) => { }, ct);
            sent += perRound;
        }, MaxOpenLoopWarmUpRounds(o.Requests, perRound));
        return sent;
    }

    /// <summary>
    /// Warm-up rounds allowed for an open-loop run: at most <see cref="MaxWarmUpRounds"/>, of at most 20,000 requests in all, and never more requests
    /// than the run measures, so that warm-up and run together stay inside the cluster (10,000 hosts are full after about
    /// 98,000 of the mix, and `--rate 10000` measures 50,000).
    /// </summary>
    internal static int MaxOpenLoopWarmUpRounds(int requests, int perRound) =>
        Math.Clamp(Math.Min(requests, MaxOpenLoopWarmUpRequests) / perRound, 1, MaxWarmUpRounds);

    private const int MaxOpenLoopWarmUpRequests = 20_000;

    internal static Latency Percentiles(long[] ticks)
    {
        var sorted = (long[])ticks.Clone();
        Array.Sort(sorted);
        double P(double p) => sorted.Length == 0 ? 0
            : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)] * 1000.0 / Stopwatch.Frequency;
        return new Latency(Math.Round(P(0.5), 5), Math.Round(P(0.99), 5), Math.Round(P(1.0), 4));
    }

    /// <summary>Open-loop pacing: request i goes out at start + i / rate, however long the earlier ones took.</summary>
    private sealed class Pacer(int rate)
    {
        private readonly long _start = Stopwatch.GetTimestamp();

        public void Wait(int i)
        {
            if (rate <= 0)
            {
                return;
            }

            var due = _start + (long)(i * (double)Stopwatch.Frequency / rate);
            while (Stopwatch.GetTimestamp() < due)
            {
                Thread.SpinWait(20);
            }
        }

        /// <summary>
        /// Waits without spinning: a spinning sender would take one of the machine's cores from the scheduler it
        /// measures. The timer wakes up to a millisecond late; requests that fell due meanwhile go out at once, so the
        /// offered rate holds (in small bursts, as real arrivals come).
        /// </summary>
        public async Task WaitAsync(int i, CancellationToken ct)
        {
            var due = _start + (long)(i * (double)Stopwatch.Frequency / rate);
            while (Stopwatch.GetTimestamp() < due)
            {
                await Task.Delay(1, ct);
            }
        }
    }
}
