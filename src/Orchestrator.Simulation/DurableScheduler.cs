using System.Threading.Channels;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Simulation;

/// <summary>
/// The real scheduler actor on the real SQLite journal, in this process, with simulated hosts: a sink actor stands
/// for every host agent. For the durable benchmarks, the durable replay and the scale run.
/// </summary>
internal sealed class DurableScheduler : IAsyncDisposable
{
    public const string Image = "simulated";
    private readonly string _dataDirectory;
    private readonly bool _removeDirectory;
    private readonly LedgerRules _rules;
    private readonly int _snapshotEvery;
    private readonly IActorRef _sink;
    private long _startedAt;

    /// <param name="postgres">a PostgreSQL connection string to journal to instead of SQLite (its database must be the bench's own).</param>
    /// <param name="recoveryLine">listen for the scheduler's account of each recovery (<see cref="RecoveryLines"/>).</param>
    private DurableScheduler(string? dataDirectory, PlacementStrategy strategy, int snapshotEvery, string? postgres, bool recoveryLine = false)
    {
        _removeDirectory = dataDirectory is null;
        _dataDirectory = dataDirectory ?? Directory.CreateTempSubdirectory("orchestrator-bench").FullName;
        Directory.CreateDirectory(_dataDirectory);
        // Trace sizes go beyond a tenant's default limits; memory 0 is a CPU-only trace (tbpp).
        _rules = new LedgerRules(new PlacementPolicy(1.0, 1.0, strategy), new VmSpecLimits(1024, 0, int.MaxValue), new HashSet<string> { Image });
        _snapshotEvery = snapshotEvery;
        // For experiments with the journal (e.g. tag-write-mode = Csv): HOCON in $ORC_JOURNAL_TUNING wins over the defaults.
        var tuning = Environment.GetEnvironmentVariable("ORC_JOURNAL_TUNING") ?? "";
        var files = postgres is null ? Array.Empty<string>() : [Path.Combine(OrchestratorConfig.ConfigDirectory, "persistence-postgres.conf")];
        var quoted = postgres is null ? "" : OrchestratorConfig.Quote(postgres);
        var store = postgres is null ? "" : $"""
            orchestrator.persistence.postgres-connection = {quoted}
            akka.persistence.journal.sql.connection-string = {quoted}
            akka.persistence.snapshot-store.sql.connection-string = {quoted}
            akka.persistence.query.journal.sql.connection-string = {quoted}
            """;
        var loaded = OrchestratorConfig.Load(files);
        // The scheduler logs its recovery's phases at INFO: heard here, with only warnings printed (on stderr).
        var logging = recoveryLine
            ? $"akka.loglevel = INFO\nakka.loggers = [\"{typeof(WarningsToStandardError).AssemblyQualifiedName}\"]"
            : "";
        var config = ConfigurationFactory.ParseString(tuning).WithFallback(ConfigurationFactory.ParseString(store))
            .WithFallback(ConfigurationFactory.ParseString(logging)).WithFallback(ConfigurationFactory.ParseString("""
                akka.actor.provider = local
                akka.loglevel = WARNING
                akka.stdout-loglevel = WARNING
                # A snapshot of a million VMs holds SQLite's single write lock for seconds: let the journal wait.
                akka.persistence.journal.sql.circuit-breaker.call-timeout = 120s
                akka.persistence.snapshot-store.sql.circuit-breaker.call-timeout = 300s
                """))
            .WithFallback(OrchestratorConfig.Complete(loaded, _dataDirectory, []));
        SqliteStoreFile.Prepare(loaded, _dataDirectory);
        System = ActorSystem.Create("orchestrator-bench", config);
        _sink = System.ActorOf(Props.Create(() => new Sink()), "simulated-hosts");
        if (recoveryLine)
        {
            var heard = Channel.CreateUnbounded<string>();
            System.EventStream.Subscribe(System.ActorOf(Props.Create(() => new RecoveryListener(heard.Writer))), typeof(Info));
            RecoveryLines = heard.Reader;
        }

        Scheduler = Start();
    }

    /// <summary>The scheduler's own line on each of its recoveries, in order (<see cref="RecoveryPhases"/>); null unless asked for.</summary>
    public ChannelReader<string>? RecoveryLines { get; }

    public ActorSystem System { get; }

    public IActorRef Scheduler { get; private set; }

    public string DatabaseFile => Path.Combine(_dataDirectory, "orchestrator.db");

    /// <summary>Where the SQLite journal is (also when the journal is PostgreSQL: the directory is made all the same).</summary>
    public string DataDirectory => _dataDirectory;

    public static DurableScheduler Create(string? dataDirectory, PlacementStrategy strategy, int snapshotEvery = 100_000, string? postgres = null) =>
        new(dataDirectory, strategy, snapshotEvery, postgres);

    /// <summary>A scheduler on the ledger in <paramref name="dataDirectory"/>, recovering as it starts, with its <see cref="RecoveryLines"/>.</summary>
    public static DurableScheduler Recover(string dataDirectory, int snapshotEvery) =>
        new(dataDirectory, PlacementStrategy.Pack, snapshotEvery, postgres: null, recoveryLine: true);

    /// <summary>How long after its start the scheduler answered a first query (it answers once it recovered).</summary>
    public async Task<TimeSpan> FirstAnswerAsync()
    {
        await Scheduler.Ask<SchedulerReplies.HostList>(SchedulerQueries.ListHosts.Instance, TimeSpan.FromMinutes(5));
        return global::System.Diagnostics.Stopwatch.GetElapsedTime(_startedAt);
    }

    /// <summary>Registers simulated hosts as their agents would, and waits until each got its assignments.</summary>
    public async Task RegisterHostsAsync(int count, int cpus, long memoryMiB)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _sink.Tell(new Sink.Expect(count, done));
        for (var i = 0; i < count; i++)
        {
            Scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(SimulatedHosts.Id(i), cpus, memoryMiB, SimulatedHosts.Driver)), _sink);
        }

        await done.Task.WaitAsync(TimeSpan.FromMinutes(5));
    }

    public static LedgerCommands.CreateVm Create(int n, int vcpus, long memoryMiB) =>
        new(TenantId.System, new VmSpec($"sim-vm-{n}", vcpus, (int)memoryMiB, Image), new VmId(new Guid(n + 1, 0, 0, new byte[8])));

    public Task<object> AskAsync(object message) => Scheduler.Ask<object>(message, TimeSpan.FromMinutes(5));

    /// <summary>Stops the scheduler and starts it again: it recovers from its latest snapshot and the journal after it.</summary>
    public async Task<TimeSpan> RestartAsync()
    {
        await Scheduler.GracefulStop(TimeSpan.FromMinutes(2));
        Scheduler = Start();
        return await FirstAnswerAsync();
    }

    public async ValueTask DisposeAsync()
    {
        // The scheduler first: stopped with the rest, its host-loss watch would see every simulated agent go and warn
        // once per host (ten thousand lines on stdout, ahead of the report and its JSON).
        try
        {
            await Scheduler.GracefulStop(TimeSpan.FromMinutes(1));
        }
        catch (Exception e) when (e is TaskCanceledException or AskTimeoutException)
        {
        }

        await System.Terminate();
        if (_removeDirectory)
        {
            try
            {
                Directory.Delete(_dataDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private IActorRef Start()
    {
        _startedAt = global::System.Diagnostics.Stopwatch.GetTimestamp();
        return System.ActorOf(SchedulerActor.Props(_rules, _snapshotEvery, new HostLossTimings(TimeSpan.FromHours(1), TimeSpan.FromHours(1))));
    }

    /// <summary>Hands on the scheduler's recovery line from the log events.</summary>
    private sealed class RecoveryListener(ChannelWriter<string> heard) : UntypedActor
    {
        protected override void OnReceive(object message)
        {
            if (message is Info info && info.Message?.ToString() is { } text && RecoveryPhases.Find(text) is not null)
            {
                heard.TryWrite(text);
            }
        }
    }

    /// <summary>The system's only logger while the recovery line is listened for: INFO is on, and only warnings are printed.</summary>
    internal sealed class WarningsToStandardError : ReceiveActor
    {
        public WarningsToStandardError()
        {
            Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
            Receive<LogEvent>(e =>
            {
                if (e.LogLevel() >= LogLevel.WarningLevel)
                {
                    Console.Error.WriteLine(e.ToString());
                }
            });
        }
    }

    /// <summary>Stands for every simulated host's agent: takes its assignments and does nothing else.</summary>
    private sealed class Sink : UntypedActor
    {
        private int _remaining;
        private TaskCompletionSource? _done;

        public sealed record Expect(int Registrations, TaskCompletionSource Done);

        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case Expect e:
                    _remaining = e.Registrations;
                    _done = e.Done;
                    break;
                case SchedulerReplies.HostAssignments when _done is not null && --_remaining == 0:
                    _done.TrySetResult();
                    _done = null;
                    break;
            }
        }
    }
}
