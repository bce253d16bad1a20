// GET /metrics: the node's instruments in Prometheus's text format, for operators only.
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using Orchestrator.Actors.Settings;
using Orchestrator.Actors.Telemetry;

namespace Orchestrator.Api;

public static class MetricsEndpoint
{
    /// <summary>
    /// The OpenTelemetry meter provider with the Prometheus exporter, reading the product's meter; the per-VM and per-host
    /// instruments sized for <paramref name="telemetry"/>'s VMs and hosts (the exporter's default cardinality limit,
    /// 2,000 series a metric, silently dropped every VM's entitlement past the 2,000th).
    /// </summary>
    public static IServiceCollection AddOrchestratorMetrics(this IServiceCollection services, TelemetrySettings? telemetry)
    {
        var limits = OrchestratorMetrics.SeriesLimits(telemetry?.MaxVms ?? TelemetrySettings.DefaultMaxVms,
            telemetry?.MaxHosts ?? TelemetrySettings.DefaultMaxHosts);
        services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            metrics.AddMeter(OrchestratorMetrics.MeterName)
                .AddPrometheusExporter(options => options.ScrapeResponseCacheDurationMilliseconds = 0);
            foreach (var (instrument, series) in limits)
            {
                metrics.AddView(instrument, new MetricStreamConfiguration { CardinalityLimit = series });
            }
        });
        return services;
    }

    /// <summary>
    /// Counts every API request by its route template (never the path itself: a name in a path would make a series per
    /// name), method and status. Runs around the whole pipeline, so refusals by the key check are counted too.
    /// </summary>
    public static IApplicationBuilder UseOrchestratorRequestMetrics(this IApplicationBuilder app) =>
        app.Use(async (http, next) =>
        {
            try
            {
                await next(http);
            }
            finally
            {
                var route = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
                OrchestratorMetrics.ApiRequests.Add(1,
                    new KeyValuePair<string, object?>("route", route),
                    new KeyValuePair<string, object?>("method", http.Request.Method),
                    new KeyValuePair<string, object?>("status", http.Response.StatusCode));
            }
        });

    /// <summary>
    /// GET /metrics for the operator's keys (admin) only: the series name every tenant, so a tenant's key gets 403 and
    /// no key 401, as under /v1.
    /// </summary>
    internal static void MapMetrics(this IEndpointRouteBuilder app, ApiAuthenticator auth) =>
        app.MapPrometheusScrapingEndpoint("/metrics", meterProvider: null, configureBranchedPipeline: branch => branch.Use(async (http, next) =>
        {
            var header = http.Request.Headers.Authorization.ToString();
            var key = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..].Trim() : null;
            var (principal, failure) = await auth.AuthenticateAsync(key, http.RequestAborted);
            if (principal is { IsAdmin: true } && principal.Tenant == Domain.TenantId.System)
            {
                await next(http);
                return;
            }

            var (status, detail) = principal is null ? (failure!.Status, failure.Detail) : (StatusCodes.Status403Forbidden, "metrics are for the operator's admin keys");
            await OrchestratorApi.Problem(status, status == 401 ? "unauthorized" : "forbidden", detail).ExecuteAsync(http);
        }), optionsName: null);
}
