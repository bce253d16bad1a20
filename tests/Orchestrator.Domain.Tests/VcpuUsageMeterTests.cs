using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class VcpuUsageMeterTests
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void The_first_measurement_only_opens_a_window()
    {
        var meter = new VcpuUsageMeter();
        meter.Sampled(0, 100, cpuSeconds: 5, waitingSeconds: 1);

        Assert.Null(meter.Measure(T0));
        Assert.Null(meter.Last);
    }

    [Fact]
    public void Usage_is_the_cpu_time_all_vcpus_gained_over_the_window_in_millicores()
    {
        var meter = new VcpuUsageMeter();
        meter.Found(0, 100);
        meter.Found(1, 101);
        meter.Measure(T0);

        meter.Sampled(0, 100, cpuSeconds: 1.0, waitingSeconds: null);
        meter.Sampled(1, 101, cpuSeconds: 0.5, waitingSeconds: null);
        var window = meter.Measure(T0.AddSeconds(2));

        Assert.Equal(new CpuWindow(UsedMillicores: 750, DemandMillicores: 750), window);
        Assert.Equal(window, meter.Last);
    }

    [Fact]
    public void Demand_adds_the_time_the_vcpus_waited_for_a_cpu()
    {
        var meter = new VcpuUsageMeter();
        meter.Sampled(0, 100, cpuSeconds: 10, waitingSeconds: 4);
        meter.Sampled(1, 101, cpuSeconds: 10, waitingSeconds: 4);
        meter.Measure(T0);

        meter.Sampled(0, 100, cpuSeconds: 10.5, waitingSeconds: 4.25);
        meter.Sampled(1, 101, cpuSeconds: 10.25, waitingSeconds: 4.5);

        Assert.Equal(new CpuWindow(750, 1500), meter.Measure(T0.AddSeconds(1)));
    }

    [Fact]
    public void Demand_never_exceeds_a_full_cpu_per_vcpu() =>
        Assert.Equal(new CpuWindow(900, 1000), OneVcpuOverOneSecond(from: (0, 0), to: (0.9, 0.9)));

    [Fact]
    public void A_vm_with_no_known_vcpu_may_still_demand_one_cpu()
    {
        var meter = new VcpuUsageMeter();
        meter.Measure(T0);

        Assert.Equal(new CpuWindow(0, 0), meter.Measure(T0.AddSeconds(1)));
    }

    [Fact]
    public void Totals_that_went_down_count_as_nothing_used() =>
        Assert.Equal(new CpuWindow(0, 0), OneVcpuOverOneSecond(from: (30, 3), to: (1, 0)));

    [Fact]
    public void A_measurement_at_the_same_instant_closes_no_window_but_moves_the_start()
    {
        var meter = new VcpuUsageMeter();
        meter.Sampled(0, 100, cpuSeconds: 0, waitingSeconds: 0);
        meter.Measure(T0);
        meter.Sampled(0, 100, cpuSeconds: 1, waitingSeconds: 0);

        Assert.Null(meter.Measure(T0));
        meter.Sampled(0, 100, cpuSeconds: 1.5, waitingSeconds: 0);
        Assert.Equal(new CpuWindow(500, 500), meter.Measure(T0.AddSeconds(1)));
    }

    [Fact]
    public void Vcpus_are_listed_by_index_with_their_latest_thread_and_totals()
    {
        var meter = new VcpuUsageMeter();
        meter.Found(1, 101);
        meter.Found(0, 100);
        meter.Sampled(1, 111, cpuSeconds: 2.5, waitingSeconds: 0.5);

        Assert.Equal([new VcpuTime(0, 100, 0, 0), new VcpuTime(1, 111, 2.5, 0.5)], meter.Vcpus);
    }

    private static CpuWindow? OneVcpuOverOneSecond((double Cpu, double Waiting) from, (double Cpu, double Waiting) to)
    {
        var meter = new VcpuUsageMeter();
        meter.Sampled(0, 100, from.Cpu, from.Waiting);
        meter.Measure(T0);
        meter.Sampled(0, 100, to.Cpu, to.Waiting);
        return meter.Measure(T0.AddSeconds(1));
    }
}
