use minijinja::{Environment, Value, context};
use std::time::Instant;
fn main() {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(200000));
    env.add_template_owned("t", "{% set result = (inputs.end_user) %}".to_string())
        .unwrap();
    env.add_template_owned("s", "{{ inputs.end_user }}".to_string())
        .unwrap();
    let json = serde_json::json!({"channel_address":"+15550100","end_user":"+15550123","queue_id":"00G5g000000SimQ","agent_user_id":"0055g000000SimA"});
    let inputs = Value::from(minijinja::value::Serde(&json));
    let steps: std::collections::BTreeMap<String, Value> = (0..5)
        .map(|i| {
            (
                format!("s{i}"),
                Value::from(minijinja::value::Serde(
                    &serde_json::json!({"succeeded": true, "x": "y"}),
                )),
            )
        })
        .collect();
    let n = 200000;
    let t = Instant::now();
    for _ in 0..n {
        let ctx = context! { inputs => inputs.clone(), steps => Value::from(steps.clone()) };
        std::hint::black_box(ctx);
    }
    println!(
        "context build: {:.2} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let ctx = context! { inputs => inputs.clone(), steps => Value::from(steps.clone()) };
    let t = Instant::now();
    for _ in 0..n {
        let tpl = env.get_template("t").unwrap();
        let c = tpl.render_captured(ctx.clone()).unwrap();
        let v = c.state().lookup("result").unwrap();
        std::hint::black_box(serde_json::to_value(&v).unwrap());
    }
    println!(
        "render_captured: {:.2} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        let tpl = env.get_template("s").unwrap();
        std::hint::black_box(tpl.render(ctx.clone()).unwrap());
    }
    println!(
        "render text: {:.2} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let expr = env.compile_expression("inputs.end_user").unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let v = expr.eval(ctx.clone()).unwrap();
        std::hint::black_box(serde_json::to_value(&v).unwrap());
    }
    println!(
        "expression eval: {:.2} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        let v = ctx.get_attr("inputs").unwrap().get_attr("end_user").unwrap();
        std::hint::black_box(serde_json::to_value(&v).unwrap());
    }
    println!("path walk: {:.2} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(json.get("end_user").cloned());
    }
    println!("json path: {:.3} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
}
