using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Settings;
using Orchestrator.Actors.Telemetry;
using Orchestrator.Api;
using Orchestrator.Domain;

namespace Orchestrator.Node.Tests;

/// <summary>
/// The node's meter provider as <see cref="MetricsEndpoint.AddOrchestratorMetrics"/> builds it: per-VM series past
/// the exporter's default of 2,000 a metric are all exported (it used to drop them silently), up to the configured VMs.
/// </summary>
public sealed class MetricSeriesLimitTests
{
    [Fact]
    public void Every_vms_cpu_series_is_exported_past_the_exporters_default_and_those_beyond_the_configured_vms_are_not()
    {
        var exported = new List<MetricSnapshot>();
        var services = new ServiceCollection();
        services.AddOrchestratorMetrics(TelemetrySettings.Off with { MaxVms = 3_000 });
        services.ConfigureOpenTelemetryMeterProvider(metrics => metrics.AddInMemoryExporter(exported));
        using var provider = services.BuildServiceProvider();
        var meters = provider.GetRequiredService<MeterProvider>();

        var vms = Enumerable.Range(0, 3_500).Select(_ => new VmId(Guid.NewGuid())).ToList();
        HostMetrics.Publish(new HostId("h1"), Usage(vms.Take(2_500)));
        meters.ForceFlush();
        // used, demand and wait per VM: 7,500 series of one metric.
        Assert.Equal(3 * 2_500, VmCpuSeries(exported));

        exported.Clear();
        HostMetrics.Publish(new HostId("h1"), Usage(vms));
        meters.ForceFlush();
        // Past the configured VMs the exporter keeps what it has and folds the rest into its one overflow series.
        Assert.Equal(3 * 3_000 + 1, VmCpuSeries(exported));
    }

    private static List<VmProtocol.Usage> Usage(IEnumerable<VmId> vms) =>
        vms.Select(vm => new VmProtocol.Usage(vm, new Epoch(1), 100, 150)).ToList();

    private static int VmCpuSeries(List<MetricSnapshot> exported) =>
        exported.Last(m => m.Name == "orchestrator.vm.cpu").MetricPoints.Count;
}
