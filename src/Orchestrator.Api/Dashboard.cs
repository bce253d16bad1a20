// The web dashboard: static files at / and the headers that keep the page to its own origin.
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.FileProviders;

namespace Orchestrator.Api;

public static class Dashboard
{
    /// <summary>
    /// Scripts, styles and connections from this origin only, nothing inline, never framed: a value a tenant named (a
    /// VM's name shown on the page) can never run as script, and the page cannot be overlaid by another site.
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    /// <summary>Where the dashboard's files are: wwwroot beside the assemblies (the build copies it there).</summary>
    public static string Root => Path.Combine(AppContext.BaseDirectory, "wwwroot");

    /// <summary>
    /// Serves the dashboard's files (index.html at /) and sets the security headers on every answer of the node, the
    /// API's included: a JSON answer opened in a browser is then as confined as the page.
    /// </summary>
    public static IApplicationBuilder UseDashboard(this IApplicationBuilder app)
    {
        app.Use((http, next) =>
        {
            var headers = http.Response.Headers;
            headers.ContentSecurityPolicy = ContentSecurityPolicy;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers["Referrer-Policy"] = "no-referrer";
            return next(http);
        });

        if (!Directory.Exists(Root))
        {
            return app; // a build without the files still serves the API
        }

        var files = new PhysicalFileProvider(Root);
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files });
        return app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = files,
            // The files change with the node: a browser asks again rather than run an old script against a new API.
            OnPrepareResponse = context => context.Context.Response.Headers.CacheControl = "no-cache",
        });
    }
}
