// The product's own instruments (System.Diagnostics.Metrics): the node exports them in Prometheus format at /metrics.
using System.Diagnostics.Metrics;

namespace Orchestrator.Actors.Telemetry;

/// <summary>
/// Every instrument the node records into, in one place so their names and label sets stay few and bounded: labels
/// are ids the server validated or made (tenant, host), states, routes and outcomes, never a tenant's free text.
/// </summary>
public static class OrchestratorMetrics
{
    public const string MeterName = "Orchestrator";

    private static readonly Meter Meter = new(MeterName);

    // Seconds from 100 µs to a minute: a decision takes microseconds, a journal write milliseconds, a boot seconds.
    private static readonly double[] SecondsBuckets =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    private static readonly long[] BatchBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

    /// <summary>One ledger decision (the scheduler's Decide, placement included), in memory.</summary>
    public static readonly Histogram<double> DecisionDuration = Meter.CreateHistogram(
        "orchestrator.scheduler.decision.duration", "s", "Time the scheduler takes to decide one command (placement included)",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });

    /// <summary>From handing a decision's events to the journal until the last of them is written (group commit included).</summary>
    public static readonly Histogram<double> JournalWriteDuration = Meter.CreateHistogram(
        "orchestrator.journal.write.duration", "s", "Time from persisting a decision's events until the journal confirms them",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });

    /// <summary>How many events one SQLite journal transaction commits (group commit).</summary>
    public static readonly Histogram<long> JournalBatchSize = Meter.CreateHistogram(
        "orchestrator.journal.batch.size", "{event}", "Events committed per journal transaction",
        advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = BatchBuckets });

    /// <summary>From a create request to the guest's ready banner, for a VM's first boot.</summary>
    public static readonly Histogram<double> CreateToReady = Meter.CreateHistogram(
        "orchestrator.vm.create_to_ready.duration", "s", "Time from a VM's creation to its guest's first ready banner",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });

    public static readonly Counter<long> VmRestarts = Meter.CreateCounter<long>(
        "orchestrator.vm.restarts", "{restart}", "VM processes restarted on their host after an exit or crash");

    public static readonly Counter<long> VmFailovers = Meter.CreateCounter<long>(
        "orchestrator.vm.failovers", "{vm}", "VMs re-placed on another host after their host was lost");

    public static readonly Counter<long> FenceKills = Meter.CreateCounter<long>(
        "orchestrator.fence.kills", "{event}", "Times this node's host killed its own VMs to fence itself");

    public static readonly Counter<long> ApiRequests = Meter.CreateCounter<long>(
        "orchestrator.api.requests", "{request}", "HTTP API requests by route template, method and status");

    public static readonly Counter<long> WebhookDeliveries = Meter.CreateCounter<long>(
        "orchestrator.webhook.deliveries", "{delivery}", "Webhook delivery attempts by outcome");

    public static readonly UpDownCounter<long> EventStreamClients = Meter.CreateUpDownCounter<long>(
        "orchestrator.api.event_stream.clients", "{client}", "Clients connected to the server-sent event stream");

    private const string VmCpu = "orchestrator.vm.cpu";
    private const string VmCpuEntitled = "orchestrator.vm.cpu.entitled";
    private const string VmsByState = "orchestrator.vms";
    private const string HostVcpus = "orchestrator.host.vcpus";
    private const string HostMemory = "orchestrator.host.memory";

    /// <summary>
    /// The series each instrument whose series grow with the VMs or hosts may have, beyond the exporter's default of
    /// 2,000 a metric: one per VM for the entitlement, three per VM (used, demand, wait) for the CPU, one per state and
    /// tenant (at most one per VM) for the VM counts, two per host for capacity and allocated. The exporter adds its
    /// overflow series (<c>otel_metric_overflow="true"</c>) beyond these, for what it drops.
    /// </summary>
    public static IReadOnlyList<(string Instrument, int Series)> SeriesLimits(int maxVms, int maxHosts) =>
    [
        (VmCpuEntitled, maxVms),
        (VmCpu, 3 * maxVms),
        (VmsByState, maxVms),
        (HostVcpus, 2 * maxHosts),
        (HostMemory, 2 * maxHosts),
    ];

    /// <summary>Per VM on this node's host: CPU used, wanted (used plus waiting for a CPU) and waited, over the last window.</summary>
    internal static void ObserveHost(Func<IEnumerable<Measurement<long>>> vmCpu) =>
        Meter.CreateObservableGauge(VmCpu, vmCpu, "{millicore}", "Per VM: CPU used, demand and wait (steal-like), from schedstat");

    /// <summary>Gauges read from the scheduler's ledger; they report on the node that runs the scheduler.</summary>
    internal static void ObserveLedger(Func<IEnumerable<Measurement<long>>> vms, Func<IEnumerable<Measurement<long>>> hosts,
        Func<IEnumerable<Measurement<long>>> hostVcpus, Func<IEnumerable<Measurement<long>>> hostMemory,
        Func<IEnumerable<Measurement<long>>> vmEntitled)
    {
        Meter.CreateObservableGauge(VmsByState, vms, "{vm}", "VMs by state and tenant");
        Meter.CreateObservableGauge("orchestrator.hosts", hosts, "{host}", "Hosts by state");
        Meter.CreateObservableGauge(HostVcpus, hostVcpus, "{vcpu}", "Per host: vCPUs of capacity and allocated");
        Meter.CreateObservableGauge(HostMemory, hostMemory, "By", "Per host: memory of capacity and allocated");
        Meter.CreateObservableGauge(VmCpuEntitled, vmEntitled, "{millicore}", "Per VM: the CPU its shares entitle it to on its host");
    }
}
